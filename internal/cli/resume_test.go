package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestResume covers what --resume finds in --out.
func TestResume(t *testing.T) {
	t.Parallel()
	var head strings.Builder
	for i := range 3 {
		head.WriteString(squareRecord(i))
	}
	notRun := `{"index":3,"status":"not_run","output":null,"error":"not run: the run was interrupted","attempts":0}` + "\n"
	cases := []struct {
		name   string
		before string // --out before the run; "-" for no file
		input  string
		code   int
		want   string // a part of stderr
	}{
		{name: "partial last line is cut off", before: head.String() + `{"index":3,"sta`, input: numbers(6), want: "resuming OUT after 3 record(s); cut off 15 byte(s)"},
		{name: "not_run records run again", before: head.String() + notRun + squareRecord(4), input: numbers(6), want: "resuming OUT after 3 record(s); cut off"},
		{name: "no file starts at the first line", before: "-", input: numbers(6), want: "resuming OUT after 0 record(s)"},
		{name: "empty file starts at the first line", before: "", input: numbers(6), want: "resuming OUT after 0 record(s)"},
		{name: "finished run is left as it is", before: head.String() + squareRecord(3) + squareRecord(4) + squareRecord(5), input: numbers(6) + "\n", want: "safepool: done 6/6: ok 0, error 0, killed 0, retried 0, resumed after 6"},
		{name: "not this command's output", before: `{"index":0,"result":1}` + "\n", input: numbers(6), code: 2,
			want: `--resume: OUT line 1 is not a record of 'safepool run' (json: unknown field "result"); pass the --out file of the run you resume, or drop --resume to start over (which overwrites the file)`},
		{name: "not JSON", before: "index,status\n", input: numbers(6), code: 2, want: "--resume: OUT line 1 is not a record of 'safepool run' (invalid character"},
		{name: "a field missing", before: `{"index":0,"status":"ok","output":0,"attempts":1}` + "\n", input: numbers(6), code: 2, want: "a field is missing"},
		{name: "unknown status", before: `{"index":0,"status":"great","output":0,"error":"","attempts":1}` + "\n", input: numbers(6), code: 2, want: `unknown status "great"`},
		{name: "out of order", before: squareRecord(0) + squareRecord(2), input: numbers(6), code: 2, want: "--resume: OUT line 2 has index 2 where 1 should be"},
		{name: "input shorter than the output", before: head.String(), input: numbers(2), code: 2,
			want: "--resume: the output already holds 3 records, but stdin has only 2 lines; pass the input of the run you resume"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "out.jsonl")
			if tc.before != "-" {
				require.NoError(t, os.WriteFile(out, []byte(tc.before), 0o644))
			}
			o := cli(t, tc.input, "run", "--module", tasks(t), "--func", "square", "--out", out, "--resume", "--progress", "always")
			require.Equal(t, tc.code, o.code, o.stderr)
			require.Contains(t, o.stderr, strings.ReplaceAll(tc.want, "OUT", out))
			if tc.code != 0 {
				if tc.before != "-" {
					require.Equal(t, tc.before, readFile(t, out), "a file --resume refuses is left alone")
				}
				return
			}
			requireSquares(t, readFile(t, out), 6)
		})
	}
}

// TestResumeSideFiles: --stats and --killed are cut back to what --out
// holds (they are flushed first, so they may run ahead of it) and
// appended to; a file --resume cannot read as one is refused.
func TestResumeSideFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, stats, killed := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "stats.jsonl"), filepath.Join(dir, "killed.jsonl")
	args := []string{"run", "--module", tasks(t), "--func", "memhog", "--memory", "16MiB", "--workers", "2",
		"--out", out, "--stats", stats, "--killed", killed}
	input := "1\n64\n2\n64\n3\n"
	o := cli(t, input, args...)
	require.Equal(t, 0, o.code, o.stderr)
	full := map[string]string{out: readFile(t, out), stats: readFile(t, stats), killed: readFile(t, killed)}
	require.Len(t, lines[killedRecord](t, full[killed]), 2)

	// Leave what a kill after the third record could: --out with two
	// records and part of the third, the side files further on.
	cut := func(s string, n int) string { return strings.Join(strings.SplitAfter(s, "\n")[:n], "") }
	require.NoError(t, os.WriteFile(out, []byte(cut(full[out], 2)+`{"index":2,`), 0o644))
	require.NoError(t, os.WriteFile(stats, []byte(cut(full[stats], 4)), 0o644))
	require.NoError(t, os.WriteFile(killed, []byte(full[killed]), 0o644))

	o = cli(t, input, append(args, "--resume")...)
	require.Equal(t, 0, o.code, o.stderr)
	rs := records(t, readFile(t, out))
	require.Len(t, rs, 5)
	require.Equal(t, []string{"ok", "memory_limit", "ok", "memory_limit", "ok"}, []string{rs[0].Status, rs[1].Status, rs[2].Status, rs[3].Status, rs[4].Status})
	ss := lines[statsRecord](t, readFile(t, stats))
	require.Len(t, ss, 5)
	for i, s := range ss {
		require.Equal(t, i, s.Index, "each slot once, in order")
	}
	ks := lines[killedRecord](t, readFile(t, killed))
	require.Len(t, ks, 2)
	require.Equal(t, []int{1, 3}, []int{ks[0].Index, ks[1].Index})

	// A side file that is not one.
	require.NoError(t, os.WriteFile(out, []byte(cut(full[out], 2)), 0o644))
	require.NoError(t, os.WriteFile(killed, []byte("not json\n"), 0o644))
	o = cli(t, input, append(args, "--resume")...)
	require.Equal(t, 2, o.code)
	require.Contains(t, o.stderr, "--resume: "+killed+" line 1 is not a --killed record of 'safepool run'")
	require.Equal(t, cut(full[out], 2), readFile(t, out), "nothing ran")
}

// TestResumeKeepsBadLines: bad-line records are kept like any other, and
// the exit code of the whole run says that there were some.
func TestResumeKeepsBadLines(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out.jsonl")
	input := "1\nx\n3\n4\n"
	o := cli(t, input, "run", "--module", tasks(t), "--func", "square", "--out", out)
	require.Equal(t, 2, o.code, o.stderr)
	full := readFile(t, out)
	require.NoError(t, os.WriteFile(out, []byte(strings.Join(strings.SplitAfter(full, "\n")[:3], "")), 0o644))

	o = cli(t, input, "run", "--module", tasks(t), "--func", "square", "--out", out, "--resume")
	require.Equal(t, 2, o.code, o.stderr)
	require.Contains(t, o.stderr, "bad input: the run this one resumes found 1 line(s) that are not tasks, the first on line 2")
	require.Equal(t, full, readFile(t, out))
}
