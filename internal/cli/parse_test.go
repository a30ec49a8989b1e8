package cli

// These tests are in package cli because they test its unexported
// parsers. Everything else is tested end to end on the built binary.

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseLine(t *testing.T) {
	cases := []struct {
		name, line string
		enc        encoding
		want, err  string
	}{
		{name: "number", line: "42\n", want: "42"},
		{name: "no newline", line: "42", want: "42"},
		{name: "crlf", line: "42\r\n", want: "42"},
		{name: "string", line: `"a b"` + "\n", want: `"a b"`},
		{name: "object keeps its spaces", line: `{ "a" : 1 }` + "\n", want: `{ "a" : 1 }`},
		{name: "blank", line: "\n", err: "is blank"},
		{name: "spaces", line: " \t \n", err: "is blank"},
		{name: "empty", line: "", err: "is blank"},
		{name: "bare word", line: "hello\n", err: "is not valid JSON: invalid character 'h' looking for beginning of value (at byte 1); each line must hold one JSON value"},
		{name: "two values", line: "1 2\n", err: "is not valid JSON: invalid character '2' after top-level value"},
		{name: "truncated", line: `{"a":` + "\n", err: "is not valid JSON: unexpected end of JSON input"},
		{name: "not UTF-8", line: "\"\xff\"\n", err: "is not valid UTF-8, which JSON must be; pass binary input as base64 with --encoding base64"},
		{name: "base64", line: `"aGk="` + "\n", enc: encodingBase64, want: "hi"},
		{name: "base64 without padding", line: `"aGk"`, enc: encodingBase64, want: "hi"},
		{name: "base64 of binary", line: `"/wD+"`, enc: encodingBase64, want: "\xff\x00\xfe"},
		{name: "base64 empty", line: `""`, enc: encodingBase64, want: ""},
		{name: "base64 not a string", line: "42", enc: encodingBase64, err: `is not a JSON string; under --encoding base64 each line is a string of base64, such as "aGk="`},
		{name: "base64 bad data", line: `"a*b="`, enc: encodingBase64, err: "is not valid base64: illegal base64 data at input byte 1"},
		{name: "base64 not JSON", line: "aGk=", enc: encodingBase64, err: "is not valid JSON: invalid character 'a' looking for beginning of value (at byte 1); under --encoding base64 each line is a JSON string of base64"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLine([]byte(tc.line), tc.enc)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, string(got))
		})
	}
}

func TestParseSize(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		err  string
	}{
		{in: "67108864", want: 64 << 20},
		{in: "64MiB", want: 64 << 20},
		{in: "64mib", want: 64 << 20},
		{in: "64 MiB", want: 64 << 20},
		{in: "512KiB", want: 512 << 10},
		{in: "1GiB", want: 1 << 30},
		{in: "1.5GiB", want: 3 << 29},
		{in: "64MB", want: 64e6},
		{in: "2kB", want: 2000},
		{in: "1GB", want: 1e9},
		{in: "100B", want: 100},
		{in: "64M", err: "ambiguous; write 64MiB (powers of 1024) or 64MB (powers of 1000)"},
		{in: "1g", err: "ambiguous"},
		{in: "64XB", err: `unknown unit "XB"`},
		{in: "MiB", err: "does not start with a number"},
		{in: "-1MiB", err: "does not start with a number"},
		{in: "1.2.3MiB", err: "is not a number"},
		{in: "0.5B", err: "not a whole number of bytes"},
		{in: "99999999999GiB", err: "too large"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSize(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestOutputValue(t *testing.T) {
	cases := []struct {
		name, out string
		enc       encoding
		want      string
		problem   string
	}{
		{name: "nothing", out: "", want: "null"},
		{name: "JSON stays a value", out: `{"a":1}`, want: `{"a":1}`},
		{name: "text becomes a string", out: "plain text", want: `"plain text"`},
		{name: "not UTF-8 is refused, not mangled", out: "\"\xff\"", want: "null", problem: "its output (3 bytes) is not valid UTF-8, which JSON cannot carry unchanged; run with --encoding base64"},
		{name: "base64", out: "\xff\x00", enc: encodingBase64, want: `"/wA="`},
		{name: "base64 of nothing", out: "", enc: encodingBase64, want: `""`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, problem := outputValue([]byte(tc.out), tc.enc)
			require.Equal(t, tc.want, string(got))
			if tc.problem == "" {
				require.Empty(t, problem)
				return
			}
			require.Contains(t, problem, tc.problem)
		})
	}
}

// FuzzParseLine: any bytes of any length give an input or an error, never a
// panic; under JSON an input is always valid JSON in UTF-8 cut from the
// line itself, and under base64 it is what the line's string decodes to.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"1", "42\n", "\"text\"\r\n", "{\"a\":[1,2,{}]}", "", "\n", " \t", "{", "1 2", "\xff", "[[[[[[[[", "\"\\u00\"", `"aGk="`, `"aGk"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		in, err := parseLine(line, encodingJSON)
		if err == nil {
			require.True(t, json.Valid(in), "%q", in)
			require.True(t, bytes.HasPrefix(line, in), "the input is the line without its ending")
			require.NotEmpty(t, bytes.TrimSpace(in))
		} else {
			require.Nil(t, in)
		}
		b, err := parseLine(line, encodingBase64)
		if err != nil {
			require.Nil(t, b)
			return
		}
		var s string
		require.NoError(t, json.Unmarshal(bytes.TrimSpace(line), &s))
		again, err := decodeBase64(strings.TrimRight(s, "="))
		require.NoError(t, err)
		require.Equal(t, b, again)
	})
}

// TestEveryFlagIsDocumented: each flag of 'safepool run' is in its help
// and in the table of the command's README (cmd/safepool/README.md).
func TestEveryFlagIsDocumented(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "cmd", "safepool", "README.md"))
	require.NoError(t, err)
	var bad error
	n := 0
	runFlags(&runOptions{}, &bad).VisitAll(func(f *flag.Flag) {
		n++
		require.Contains(t, runHelp, "  --"+f.Name+" ", "the help of run")
		require.Contains(t, string(readme), "| `--"+f.Name, "README.md's table of flags")
	})
	require.Greater(t, n, 20)
}
