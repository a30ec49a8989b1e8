package cli_test

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

// The CLI is tested end to end, as the binary users run: TestMain builds
// cmd/safepool, the main package that wraps this one, once, and every test
// runs it as a child process with real workers.
var bin string

// command is the main package TestMain builds.
const command = "github.com/safepool/safepool/cmd/safepool"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "safepool-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "safepool")
	build := exec.Command("go", "build", "-o", bin, command)
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

// cliEnv is the environment the CLI runs in. Its compilation cache lives in
// the cache the whole test suite shares, so that a module is compiled to
// machine code once per machine rather than once per run.
func cliEnv() []string {
	return append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(os.TempDir(), "safepool-test-cache", "cli"))
}

// outcome is what one run of the CLI gave.
type outcome struct {
	stdout, stderr string
	code           int
}

// cli runs the CLI with args and stdin, and waits for it to exit.
func cli(t *testing.T, stdin string, args ...string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = cliEnv()
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

// record is one line of --out. Decoding rejects unknown fields, so the
// tests pin the exact shape.
type record struct {
	Index    int             `json:"index"`
	Status   string          `json:"status"`
	Output   json.RawMessage `json:"output"`
	Error    *string         `json:"error"`
	Attempts int             `json:"attempts"`
}

// killedRecord is one line of --killed.
type killedRecord struct {
	Index    int             `json:"index"`
	Input    json.RawMessage `json:"input"`
	Status   string          `json:"status"`
	Reason   string          `json:"reason"`
	Attempts int             `json:"attempts"`
}

// statsRecord is one line of --stats.
type statsRecord struct {
	Index       int    `json:"index"`
	Start       string `json:"start"`
	End         string `json:"end"`
	WorkerPID   int    `json:"worker_pid"`
	Attempts    int    `json:"attempts"`
	PeakMemory  int64  `json:"peak_memory"`
	MemoryLimit int64  `json:"memory_limit"`
	Status      string `json:"status"`
	// EarlierAttempts is there only for tasks that ran more than once.
	EarlierAttempts json.RawMessage `json:"earlier_attempts"`
}

// lines decodes JSON Lines into T, strictly: every line is one object with
// exactly T's fields.
func lines[T any](t *testing.T, s string) []T {
	t.Helper()
	var out []T
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var v T
		require.NoError(t, dec.Decode(&v), "line %q", sc.Text())
		out = append(out, v)
	}
	require.NoError(t, sc.Err())
	return out
}

// records decodes --out and checks the fields every record has: one per
// line, in input order, and attempts 0 exactly for the slots that never
// ran (bad input lines, with status error, and not_run).
func records(t *testing.T, s string) []record {
	t.Helper()
	rs := lines[record](t, s)
	for i, r := range rs {
		require.Equal(t, i, r.Index, "records are in input order")
		require.NotNil(t, r.Error, "record %d has an error field", i)
		require.NotNil(t, r.Output, "record %d has an output field", i)
		if r.Attempts == 0 {
			require.Contains(t, []string{"error", "not_run"}, r.Status, "record %d never ran", i)
			require.Equal(t, "null", string(r.Output))
			require.NotEmpty(t, *r.Error)
			continue
		}
		require.NotEqual(t, "not_run", r.Status)
	}
	return rs
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// numbers is the input 0..n-1, one number a line.
func numbers(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintln(&b, i)
	}
	return b.String()
}

// tasks is the path of the Go SDK fixture module.
func tasks(t *testing.T) string { return testguest.Path(t, "tasks") }

// requireSquares checks that out holds exactly one ok record per index
// 0..n-1 of square (or slow_square) over 0..n-1, in order.
func requireSquares(t *testing.T, out string, n int) {
	t.Helper()
	rs := records(t, out)
	require.Len(t, rs, n)
	for i, r := range rs {
		require.Equal(t, "ok", r.Status, "record %d: %s", i, *r.Error)
		require.Equal(t, strconv.Itoa(i*i), string(r.Output), "record %d", i)
	}
}
