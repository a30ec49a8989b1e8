package cli_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// storm SIGKILLs every child of process pid as soon as it sees it, the
// way an OOM killer under pressure or a hostile operator would, until the
// process exits or, once the first kill has landed, for lasts (0: until
// the process exits). It returns the number of kills so far and a channel
// closed when the storm is over.
func storm(pid int, lasts time.Duration) (*atomic.Int64, <-chan struct{}) {
	kills := new(atomic.Int64)
	over := make(chan struct{})
	go func() {
		defer close(over)
		var end time.Time
		t := time.NewTicker(time.Millisecond) // a worker takes tens of ms to start
		defer t.Stop()
		for range t.C {
			if !end.IsZero() && time.Now().After(end) {
				return
			}
			pids, ok := childPIDs(pid)
			if !ok {
				return // the CLI has exited
			}
			for _, c := range pids {
				if syscall.Kill(c, syscall.SIGKILL) == nil {
					if kills.Add(1) == 1 && lasts > 0 {
						end = time.Now().Add(lasts)
					}
				}
			}
		}
	}()
	return kills, over
}

// childPIDs lists the children of pid, like children, for a goroutine
// that cannot fail the test. It reports false once pid has exited.
func childPIDs(pid int) ([]int, bool) {
	files, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	if len(files) == 0 {
		return nil, false
	}
	var pids []int
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(field); err == nil {
				pids = append(pids, n)
			}
		}
	}
	return pids, true
}

// TestStartStormThenRecovery kills every worker the CLI starts, as it
// starts, for 2.5 s: the pool keeps starting workers (it never takes a
// kill from outside for a bad module), and once the storm is over the run
// completes with every task ok.
func TestStartStormThenRecovery(t *testing.T) {
	t.Parallel()
	r := start(t, strings.NewReader(numbers(20)), "run", "--module", tasks(t), "--func", "square", "--workers", "2",
		"--on-kill", "retry", "--retries", "50")
	kills, over := storm(r.pid(), 2500*time.Millisecond)
	o := r.wait(t)
	<-over
	require.Equal(t, 0, o.code, o.stderr)
	require.GreaterOrEqual(t, kills.Load(), int64(3), "the storm killed workers")
	requireSquares(t, o.stdout, 20)
	require.NotContains(t, o.stderr, "cannot run")
	require.NotContains(t, o.stderr, "inspect")
}

// TestEndlessStormGivesUp: when workers keep being killed as they start,
// the CLI gives up after --start-give-up by itself, with exit code 1 and
// the pool's StartError, and never calls it a bad module. The storm starts
// once tasks are finishing, so the run's map is what the pool fails; the
// records that finished are in --out.
func TestEndlessStormGivesUp(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out.jsonl")
	r := start(t, strings.NewReader(numbers(500)), "run", "--module", tasks(t), "--func", "slow_square", "--workers", "2",
		"--on-kill", "retry", "--retries", "100", "--start-give-up", "2s", "--out", out)
	waitLines(t, r, out, 1)
	began := time.Now()
	kills, over := storm(r.pid(), 0)
	o := r.wait(t)
	<-over
	require.Equal(t, 1, o.code, o.stderr)
	require.Less(t, time.Since(began), 30*time.Second, "it gave up by itself")
	require.GreaterOrEqual(t, kills.Load(), int64(3))
	require.Contains(t, o.stderr, "safepool: run failed: pool: workers killed by SIGKILL")
	require.Contains(t, o.stderr, "something outside safepool (the OOM killer, an operator) kills them")
	require.Contains(t, o.stderr, out+" holds the records of the first ")
	require.NotContains(t, o.stderr, "cannot run")
	require.NotContains(t, o.stderr, "inspect")
	rs := records(t, readFile(t, out))
	require.NotEmpty(t, rs)
	for i, r := range rs {
		if r.Status == "ok" {
			require.Equal(t, strconv.Itoa(i*i), string(r.Output))
		}
	}
}

// TestEndlessStormAtStartGivesUp is TestEndlessStormGivesUp with the storm
// from the first worker on, so that pool.New is what gives up.
func TestEndlessStormAtStartGivesUp(t *testing.T) {
	t.Parallel()
	began := time.Now()
	r := start(t, strings.NewReader(numbers(20)), "run", "--module", tasks(t), "--func", "square", "--workers", "2",
		"--start-give-up", "2s")
	kills, over := storm(r.pid(), 0)
	o := r.wait(t)
	<-over
	require.Equal(t, 1, o.code, o.stderr)
	require.Less(t, time.Since(began), 30*time.Second, "it gave up by itself")
	require.GreaterOrEqual(t, kills.Load(), int64(3))
	require.Contains(t, o.stderr, "safepool: run failed: pool: workers killed by SIGKILL as they started: ")
	require.Contains(t, o.stderr, "something outside safepool (the OOM killer, an operator) kills them")
	require.NotContains(t, o.stderr, "cannot run")
	require.NotContains(t, o.stderr, "inspect")
	require.Empty(t, o.stdout)
}
