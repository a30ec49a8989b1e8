package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRunManyChunksWithBadLines runs enough lines for many chunks, with
// bad and blank lines among them (some at the edges of chunks, whatever
// sizes they take), and checks every record in order: the tasks' outputs,
// each bad line in its slot, trailing blank lines without a record.
func TestRunManyChunksWithBadLines(t *testing.T) {
	t.Parallel()
	const n = 20_000
	var in strings.Builder
	bad := map[int]string{}
	for i := range n {
		switch {
		case i%997 == 5:
			in.WriteString("x\n")
			bad[i] = "is not valid JSON"
		case i%1013 == 7:
			in.WriteString("  \n")
			bad[i] = "is blank"
		default:
			fmt.Fprintln(&in, i)
		}
	}
	in.WriteString("\n\n") // blank lines at the end: no records
	o := cli(t, in.String(), "run", "--module", tasks(t), "--func", "square", "--workers", "2")
	require.Equal(t, 2, o.code, o.stderr)
	require.Contains(t, o.stderr, fmt.Sprintf("bad input: %d line(s) of stdin are not tasks", len(bad)))
	rs := records(t, o.stdout)
	require.Len(t, rs, n)
	for i, r := range rs {
		if why, ok := bad[i]; ok {
			require.Equal(t, "error", r.Status, "record %d", i)
			require.Contains(t, *r.Error, fmt.Sprintf("line %d %s", i+1, why))
			continue
		}
		require.Equal(t, "ok", r.Status, "record %d: %s", i, *r.Error)
		require.Equal(t, strconv.Itoa(i*i), string(r.Output), "record %d", i)
	}
}

// TestInterruptWithStdinOpen: Ctrl-C ends a run whose input is a pipe
// that stays open (the reader is blocked on it), and the records written
// are those of the lines that ran.
func TestInterruptWithStdinOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	defer pw.Close()
	r := start(t, pr, "run", "--module", tasks(t), "--func", "square", "--workers", "1", "--out", out)
	pr.Close()
	_, err = pw.WriteString(numbers(5))
	require.NoError(t, err)
	waitLines(t, r, out, 5)
	require.NoError(t, syscall.Kill(r.pid(), syscall.SIGINT))
	o := r.wait(t)
	require.Equal(t, 1, o.code, o.stderr)
	require.Contains(t, o.stderr, "run interrupted; "+out+" holds the records of the first 5 line(s)")
	requireSquares(t, readFile(t, out), 5)
}

// TestRunAbortWithLogs: with --log-level the tasks go through one Imap,
// whose abort ends the output with the task that aborted, as without.
func TestRunAbortWithLogs(t *testing.T) {
	t.Parallel()
	o := cli(t, "1\n\"x\"\n3\n", "run", "--module", tasks(t), "--func", "square", "--workers", "1",
		"--on-error", "abort", "--log-level", "error")
	require.Equal(t, 1, o.code, o.stderr)
	require.Contains(t, o.stderr, `safepool: run aborted: line 2 (input "x") ended with error after 1 attempt(s)`)
	rs := records(t, o.stdout)
	require.Len(t, rs, 2, "the output ends with the task that aborted")
	require.Equal(t, "ok", rs[0].Status)
	require.Equal(t, "error", rs[1].Status)
}
