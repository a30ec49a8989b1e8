//go:build cgo

package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
)

// The wasmtime build of the command is tested end to end, as the binary
// users install: TestMain builds it once, and every test runs it as a child
// process whose workers are that binary again. The command's behaviour is
// tested in the main module (internal/cli); these tests show that this
// build has wasmtime, in the host and in its workers.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "safepool-wasmtime-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "safepool")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building safepool:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// outcome is what one run of the command gave.
type outcome struct {
	stdout, stderr string
	code           int
}

// cli runs the command with args and stdin, and waits for it to exit.
func cli(t *testing.T, stdin string, args ...string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	o := outcome{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "running safepool: %v", err)
		o.code = ee.ExitCode()
	}
	require.NoError(t, ctx.Err(), "safepool did not exit: %+v", o)
	return o
}

// record is one line of the output. Decoding rejects unknown fields, so the
// test pins the exact shape.
type record struct {
	Index    int             `json:"index"`
	Status   string          `json:"status"`
	Output   json.RawMessage `json:"output"`
	Error    string          `json:"error"`
	Attempts int             `json:"attempts"`
}

func records(t *testing.T, s string) []record {
	t.Helper()
	var rs []record
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var r record
		require.NoError(t, dec.Decode(&r), "line %q", sc.Text())
		rs = append(rs, r)
	}
	require.NoError(t, sc.Err())
	return rs
}

func TestVersionListsBothEngines(t *testing.T) {
	o := cli(t, "", "version")
	require.Equal(t, 0, o.code, o.stderr)
	require.Regexp(t, `^safepool \S+ \(go1\.\S+, \w+/\w+, engines: wazero v\d\S*, wasmtime v\d\S*\)\n$`, o.stdout)
}

// TestRunOnEachEngine maps the hand-written square module with --engine
// wasmtime, and with wazero for comparison: the same records, and a
// compilation cache filled by the engine asked for and no other.
func TestRunOnEachEngine(t *testing.T) {
	mod := testguest.Path(t, "wsquare")
	inputs := []int{0, 1, 2, 3, 4, -7, 12345}
	var in strings.Builder
	for _, n := range inputs {
		fmt.Fprintln(&in, n)
	}
	for _, eng := range []string{"wasmtime", "wazero"} {
		t.Run(eng, func(t *testing.T) {
			cache := t.TempDir()
			o := cli(t, in.String(), "run", "--module", mod, "--func", "square", "--engine", eng,
				"--workers", "2", "--cache-dir", cache, "--progress", "never")
			require.Equal(t, 0, o.code, o.stderr)
			rs := records(t, o.stdout)
			require.Len(t, rs, len(inputs))
			for i, r := range rs {
				require.Equal(t, record{Index: i, Status: "ok", Output: json.RawMessage(strconv.Itoa(inputs[i] * inputs[i])), Attempts: 1}, r)
			}

			// The module was compiled by the engine asked for, once, into
			// that engine's part of the cache; the other's stays empty.
			entries, err := os.ReadDir(cache)
			require.NoError(t, err)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			require.Equal(t, []string{eng}, names, "the cache's engine directories")
			if eng == "wasmtime" {
				compiled, err := filepath.Glob(filepath.Join(cache, "wasmtime", "*", "wasmtime-*.cwasm"))
				require.NoError(t, err)
				require.Len(t, compiled, 1, "wasmtime's compiled module")
			}
		})
	}
}
