package main_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
// and SIGKILLs one worker once tasks are finishing.
func runAndKill(t *testing.T, flags ...string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"run", "--module", tasks(t), "--func", "slow_square", "--workers", "2",
		"--progress", "always"}, flags...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = cliEnv()
	cmd.Stdin = strings.NewReader(numbers(40))
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	errPipe, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	// The progress bar on stderr says when tasks are finishing, so the kill
	// lands while the workers are busy, whatever the machine's speed.
	var stderr bytes.Buffer
	running := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		counts := regexp.MustCompile(`\((\d+)/40\)`)
		signalled := false
		r := bufio.NewReader(errPipe)
		for {
			chunk, err := r.ReadString('\r')
			stderr.WriteString(chunk)
			if m := counts.FindStringSubmatch(chunk); m != nil && !signalled {
				if n, _ := strconv.Atoi(m[1]); n >= 2 && n <= 20 {
					signalled = true
					close(running)
				}
			}
			if err != nil {
				return
			}
		}
	}()

	select {
	case <-running:
	case <-copied:
		t.Fatalf("the run ended before tasks were seen running: %s", stderr.String())
	}
	workers := children(t, cmd.Process.Pid)
	require.Len(t, workers, 2, "the CLI runs two workers")
	require.NoError(t, syscall.Kill(workers[0], syscall.SIGKILL))

	<-copied
	err = cmd.Wait()
	o := outcome{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		o.code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return o
}

// children lists the child processes of pid, from the children file of
// each of its threads.
func children(t *testing.T, pid int) []int {
	t.Helper()
	files, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	require.NoError(t, err)
	require.NotEmpty(t, files, "no /proc/<pid>/task/*/children: the kernel lacks CONFIG_PROC_CHILDREN")
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		for _, field := range strings.Fields(string(b)) {
			n, err := strconv.Atoi(field)
			require.NoError(t, err)
			pids = append(pids, n)
		}
	}
	return pids
}
