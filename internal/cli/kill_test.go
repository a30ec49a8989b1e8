package cli_test

import (
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestKillWorkerFromOutside SIGKILLs one of the CLI's workers while it runs
// slow_square over 40 inputs, the way the OOM killer or an operator would:
// the run must finish, with exactly one slot blamed and every other task ok,
// in order.
func TestKillWorkerFromOutside(t *testing.T) {
	t.Run("skip", func(t *testing.T) {
		killed := filepath.Join(t.TempDir(), "killed.jsonl")
		o := runAndKill(t, "--killed", killed)
		require.Equal(t, 0, o.code, o.stderr)
		rs := records(t, o.stdout)
		require.Len(t, rs, 40)
		victim := -1
		for i, r := range rs {
			if r.Status == "ok" {
				require.Equal(t, strconv.Itoa(i*i), string(r.Output))
				require.Equal(t, 1, r.Attempts, "task %d: only the running task is blamed", i)
				continue
			}
			require.Equal(t, -1, victim, "a second task was blamed: %d and %d", victim, i)
			victim = i
			require.Equal(t, "killed", r.Status)
			require.Equal(t, "null", string(r.Output))
			require.Contains(t, *r.Error, "SIGKILL")
		}
		require.NotEqual(t, -1, victim, "no task was killed")

		ks := lines[killedRecord](t, readFile(t, killed))
		require.Len(t, ks, 1)
		require.Equal(t, victim, ks[0].Index)
		require.Equal(t, strconv.Itoa(victim), string(ks[0].Input))
		require.Equal(t, "killed", ks[0].Status)
		require.Contains(t, ks[0].Reason, "SIGKILL")
		require.Equal(t, 1, ks[0].Attempts)
	})
	t.Run("retry", func(t *testing.T) {
		killed := filepath.Join(t.TempDir(), "killed.jsonl")
		o := runAndKill(t, "--killed", killed, "--on-kill", "retry")
		require.Equal(t, 0, o.code, o.stderr)
		rs := records(t, o.stdout)
		require.Len(t, rs, 40)
		retried := 0
		for i, r := range rs {
			require.Equal(t, "ok", r.Status, "task %d: %s", i, *r.Error)
			require.Equal(t, strconv.Itoa(i*i), string(r.Output))
			if r.Attempts > 1 {
				require.Equal(t, 2, r.Attempts)
				retried++
			}
		}
		require.Equal(t, 1, retried, "exactly the running task is retried")
		require.Empty(t, readFile(t, killed))
		require.Contains(t, o.stderr, "retried 1")
	})
}

// runAndKill runs slow_square (30 ms a task) over 0..39 with two workers
// and SIGKILLs one worker once tasks are finishing. It returns the outcome
// with --out's content as stdout.
func runAndKill(t *testing.T, flags ...string) outcome {
	t.Helper()
	return runAndKillN(t, 40, flags...)
}

// runAndKillN is runAndKill over n numbers.
func runAndKillN(t *testing.T, n int, flags ...string) outcome {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.jsonl")
	args := append([]string{"run", "--module", tasks(t), "--func", "slow_square", "--workers", "2",
		"--progress", "always", "--out", out}, flags...)
	r := start(t, strings.NewReader(numbers(n)), args...)

	// Records are written as tasks finish, so the second one says that the
	// workers are busy, whatever the machine's speed.
	waitLines(t, r, out, 2)
	workers := children(t, r.pid())
	require.Len(t, workers, 2, "the CLI runs two workers")
	require.NoError(t, syscall.Kill(workers[0], syscall.SIGKILL))

	o := r.wait(t)
	o.stdout = readFile(t, out)
	return o
}
