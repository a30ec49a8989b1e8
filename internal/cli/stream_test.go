package cli_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// squareRecord is the --out line of an ok square task.
func squareRecord(i int) string {
	return fmt.Sprintf(`{"index":%d,"status":"ok","output":%d,"error":"","attempts":1}`+"\n", i, i*i)
}

// requirePrefix checks that a file an interrupted run left is whole
// records of indices 0..k-1 in order, possibly followed by the start of
// the next one (a write the kill cut short), and returns k.
func requirePrefix(t *testing.T, out string, want func(i int) string) int {
	t.Helper()
	whole, partial := out, ""
	if i := strings.LastIndexByte(out, '\n'); i+1 < len(out) {
		whole, partial = out[:i+1], out[i+1:]
	}
	rs := records(t, whole)
	for i := range rs {
		require.Equal(t, want(i), strings.SplitAfter(whole, "\n")[i], "record %d", i)
	}
	if partial != "" {
		require.True(t, strings.HasPrefix(want(len(rs)), partial), "a partial last line is the start of the next record: %q", partial)
	}
	return len(rs)
}

// TestKillCLIThenResume SIGKILLs the CLI itself mid-run, as the OOM killer
// or an operator would: every file it was writing holds whole records in
// input order (or the start of the next), its workers die with it, and
// --resume completes the run so that every index is there exactly once,
// in order, with the right output.
func TestKillCLIThenResume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in, out, stats := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "stats.jsonl")
	const n = 200
	require.NoError(t, os.WriteFile(in, []byte(numbers(n)), 0o644))
	args := []string{"run", "--module", tasks(t), "--func", "slow_square", "--workers", "2",
		"--in", in, "--out", out, "--stats", stats}

	r := start(t, nil, args...)
	waitLines(t, r, out, 20)
	workers := children(t, r.pid())
	require.NoError(t, syscall.Kill(r.pid(), syscall.SIGKILL))
	<-r.exited
	require.Contains(t, r.err.Error(), "signal: killed")

	k := requirePrefix(t, readFile(t, out), squareRecord)
	require.GreaterOrEqual(t, k, 20)
	require.Less(t, k, n, "the kill landed mid-run")
	ss := lines[statsRecord](t, readFile(t, stats)[:strings.LastIndexByte(readFile(t, stats), '\n')+1])
	require.GreaterOrEqual(t, len(ss), k, "--stats is flushed before --out")
	for i, s := range ss {
		require.Equal(t, i, s.Index)
	}
	for _, w := range workers {
		waitGone(t, w)
	}

	o := cli(t, "", append(args, "--resume", "--progress", "always")...)
	require.Equal(t, 0, o.code, o.stderr)
	require.Contains(t, o.stderr, fmt.Sprintf("resuming %s after %d record(s)", out, k))
	requireSquares(t, readFile(t, out), n)
	ss = lines[statsRecord](t, readFile(t, stats))
	require.Len(t, ss, n, "--stats was cut back to --out and appended to")
	for i, s := range ss {
		require.Equal(t, i, s.Index)
		require.Equal(t, "ok", s.Status)
	}
}

// waitGone waits until process pid has exited: a worker dies with the CLI
// (its parent-death signal is SIGKILL).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return // gone already
	}
	require.NoError(t, err)
	defer unix.Close(fd)
	// A pidfd becomes readable when its process exits.
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 30_000)
	require.NoError(t, err)
	require.Equal(t, 1, n, "worker %d outlived the CLI", pid)
}

// TestInterruptThenResume: Ctrl-C stops the run, which writes what
// finished (a not_run record stands for each task between them that did
// not) and exits with code 1; --resume runs the rest.
func TestInterruptThenResume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	const n = 100
	require.NoError(t, os.WriteFile(in, []byte(numbers(n)), 0o644))
	args := []string{"run", "--module", tasks(t), "--func", "slow_square", "--workers", "2", "--in", in, "--out", out}

	r := start(t, nil, args...)
	waitLines(t, r, out, 5)
	require.NoError(t, syscall.Kill(r.pid(), syscall.SIGINT))
	o := r.wait(t)
	require.Equal(t, 1, o.code, o.stderr)
	require.Contains(t, o.stderr, "safepool: run interrupted; "+out+" holds the records of the first ")
	require.Contains(t, o.stderr, "run the same command with --resume to go on from there")
	rs := records(t, readFile(t, out))
	require.Less(t, len(rs), n)
	for i, r := range rs {
		if r.Status == "not_run" {
			require.Equal(t, "not run: the run was interrupted", *r.Error)
			require.Less(t, i, len(rs)-1, "the output ends with a task that finished")
			continue
		}
		require.Equal(t, strconv.Itoa(i*i), string(r.Output))
	}

	o = cli(t, "", append(args, "--resume")...)
	require.Equal(t, 0, o.code, o.stderr)
	requireSquares(t, readFile(t, out), n)
}
