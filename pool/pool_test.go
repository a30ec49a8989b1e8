package pool_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/module"
	"github.com/safepool/safepool/pool"
)

func TestConfigErrors(t *testing.T) {
	mod := testguest.Path(t, "wsquare")
	cases := []struct {
		name string
		cfg  pool.Config
		want string
	}{
		{"no module", pool.Config{}, "set Module"},
		{"both modules", pool.Config{Module: mod, ModuleBytes: []byte{1}}, "only one"},
		{"negative workers", pool.Config{Module: mod, Workers: -1}, "Workers is -1"},
		{"tiny memory", pool.Config{Module: mod, MemoryLimit: 100}, "at least one 64 KiB page"},
		{"huge memory", pool.Config{Module: mod, MemoryLimit: 5 << 30}, "up to 4 GiB"},
		{"negative timeout", pool.Config{Module: mod, Timeout: -time.Second}, "Timeout"},
		{"bad policy", pool.Config{Module: mod, KillPolicy: pool.Policy(9)}, "KillPolicy"},
		{"shrinking growth", pool.Config{Module: mod, Retry: pool.RetryPolicy{MemoryGrowth: 0.5}}, "MemoryGrowth"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pool.New(context.Background(), tc.cfg)
			require.ErrorIs(t, err, pool.ErrConfig)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestBadModules(t *testing.T) {
	cases := []struct {
		module string
		is     error
		want   string
	}{
		{"wbadimport", module.ErrForbiddenImport, "env.foo"},
		{"wnoexport", module.ErrNotTaskModule, "neither"},
		{"wbadsig", module.ErrBadSignature, "safepool_abi_version"},
	}
	for _, tc := range cases {
		t.Run(tc.module, func(t *testing.T) {
			_, err := pool.New(context.Background(), pool.Config{Module: testguest.Path(t, tc.module), Workers: 1, CacheDir: cacheDir(t)})
			require.ErrorIs(t, err, tc.is)
			require.ErrorContains(t, err, tc.want)
		})
	}
	t.Run("not wasm", func(t *testing.T) {
		_, err := pool.New(context.Background(), pool.Config{ModuleBytes: []byte("hello world, not wasm"), Workers: 1})
		require.ErrorIs(t, err, module.ErrNotWasm)
	})
	t.Run("truncated", func(t *testing.T) {
		b := testguest.Bytes(t, "wsquare")
		_, err := pool.New(context.Background(), pool.Config{ModuleBytes: b[:len(b)/2], Workers: 1})
		require.ErrorIs(t, err, module.ErrInvalidModule)
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := pool.New(context.Background(), pool.Config{Module: filepath.Join(t.TempDir(), "nope.wasm")})
		require.ErrorContains(t, err, "read module")
	})
	t.Run("unknown function", func(t *testing.T) {
		p := newPool(t, "wsquare", nil)
		_, err := p.Map(context.Background(), "cube", ints(3))
		require.ErrorIs(t, err, pool.ErrUnknownFunc)
		require.ErrorContains(t, err, "square")
	})
}

func TestStatusesAndStats(t *testing.T) {
	p := newPool(t, "tasks", func(c *pool.Config) { c.Timeout = 500 * time.Millisecond; c.MemoryLimit = 32 << 20 })
	ctx := context.Background()
	res, err := p.Apply(ctx, "square", []byte("12"))
	require.NoError(t, err)
	require.Equal(t, "144", string(res.Output))
	require.Equal(t, 1, res.Attempts)
	require.False(t, res.Stats.Start.IsZero())
	require.False(t, res.Stats.End.Before(res.Stats.Start))
	require.NotZero(t, res.Stats.WorkerPID)
	require.NotZero(t, res.Stats.PeakMemory)
	require.Equal(t, int64(32<<20), res.Stats.MemoryLimit)

	for fn, want := range map[string]pool.Status{"fail": pool.StatusError, "memhog": pool.StatusMemoryLimit, "spin": pool.StatusTimeout} {
		t.Run(fn, func(t *testing.T) {
			res, err := p.Apply(ctx, fn, []byte("64"))
			require.NoError(t, err, "skip is the default for every cause")
			require.Equal(t, want, res.Status, res.Error)
			require.Nil(t, res.Output)
		})
	}
	var killed []pool.Status
	for _, kt := range p.KilledTasks() {
		killed = append(killed, kt.Status)
	}
	slices.Sort(killed)
	require.Equal(t, []pool.Status{pool.StatusMemoryLimit, pool.StatusTimeout}, killed, "guest errors are not killed tasks")
}

func TestMemoryEscalation(t *testing.T) {
	p := newPool(t, "tasks", func(c *pool.Config) {
		c.MemoryLimit = 32 << 20
		c.OnMemoryLimit = pool.Retry
		c.Retry = pool.RetryPolicy{MaxAttempts: 5, MemoryGrowth: 2, MaxMemory: 256 << 20, Backoff: time.Millisecond}
	})
	rs, err := p.Map(context.Background(), "memhog", [][]byte{[]byte("8"), []byte("100"), []byte("1000")})
	require.NoError(t, err)
	require.Equal(t, pool.StatusOK, rs[0].Status)
	require.Equal(t, 1, rs[0].Attempts)
	// 100 MiB: 32 → 64 → 128 MiB.
	require.Equal(t, pool.StatusOK, rs[1].Status, rs[1].Error)
	require.Equal(t, 3, rs[1].Attempts)
	require.Equal(t, int64(128<<20), rs[1].Stats.MemoryLimit)
	// 1000 MiB never fits under MaxMemory: it stops at the ceiling.
	require.Equal(t, pool.StatusMemoryLimit, rs[2].Status)
	require.Contains(t, rs[2].Error, "Retry.MaxMemory")
	kts := p.KilledTasks()
	require.Len(t, kts, 1)
	require.Equal(t, 2, kts[0].Index)
	var caps []int64
	for _, a := range kts[0].Attempts {
		caps = append(caps, a.Stats.MemoryLimit)
	}
	require.Equal(t, []int64{32 << 20, 64 << 20, 128 << 20, 256 << 20}, caps)
}

func TestOnErrorAbort(t *testing.T) {
	p := newPool(t, "tasks", func(c *pool.Config) { c.OnError = pool.Abort })
	in := [][]byte{[]byte("1"), []byte("2"), []byte("x"), []byte("4")}
	_, err := p.Map(context.Background(), "fail", in)
	require.ErrorIs(t, err, pool.ErrTaskFailed)
	require.NotErrorIs(t, err, pool.ErrTaskKilled)
	require.ErrorContains(t, err, "boom")
}

func TestGuestErrorsNeverStopThePool(t *testing.T) {
	p := newPool(t, "tasks", nil)
	var in [][]byte
	for i := range 20 {
		in = append(in, []byte(strconv.Itoa(i)))
	}
	rs, err := p.Map(context.Background(), "panic", in)
	require.NoError(t, err)
	for _, r := range rs {
		require.Equal(t, pool.StatusError, r.Status)
		require.Contains(t, r.Error, "kaboom")
	}
	rs, err = p.Map(context.Background(), "square", ints(3))
	require.NoError(t, err)
	require.Equal(t, []string{"0", "1", "4"}, squares(t, rs))
}

func TestMemoryGate(t *testing.T) {
	restore := pool.SetMemAvailable(func() (int64, error) { return 1 << 20, nil }) // 1 MiB free
	defer restore()
	k := newKiller(1)
	p := newPool(t, "tasks", func(c *pool.Config) {
		c.OnEvent = k.onEvent
		c.KillPolicy = pool.Retry
		c.Overcommit = true // the stand-in MemAvailable holds no worker
		c.Retry = pool.RetryPolicy{MinAvailable: 1 << 30, GateTimeout: 300 * time.Millisecond, Backoff: time.Millisecond}
	})
	rs, err := p.Map(context.Background(), "slow_square", ints(3))
	require.NoError(t, err)
	require.Equal(t, pool.StatusKilled, rs[1].Status)
	require.Contains(t, rs[1].Error, "memory gate")
	require.Equal(t, 1, rs[1].Attempts)
	require.Equal(t, "4", string(rs[2].Output))

	t.Run("opens when memory frees up", func(t *testing.T) {
		var calls int
		restore := pool.SetMemAvailable(func() (int64, error) {
			calls++
			if calls < 3 {
				return 1 << 20, nil
			}
			return 8 << 30, nil
		})
		defer restore()
		k := newKiller(0)
		p := newPool(t, "tasks", func(c *pool.Config) {
			c.OnEvent = k.onEvent
			c.KillPolicy = pool.Retry
			c.Overcommit = true // the stand-in MemAvailable holds no worker
			c.Retry = pool.RetryPolicy{MinAvailable: 1 << 30, GateTimeout: 5 * time.Second, Backoff: time.Millisecond}
		})
		rs, err := p.Map(context.Background(), "slow_square", ints(2))
		require.NoError(t, err)
		require.Equal(t, "0", string(rs[0].Output))
		require.Equal(t, 2, rs[0].Attempts)
		require.GreaterOrEqual(t, calls, 3)
	})
}

func TestRetryGivesUp(t *testing.T) {
	p := newPool(t, "tasks", func(c *pool.Config) {
		c.Timeout = 200 * time.Millisecond
		c.OnTimeout = pool.Retry
		c.Retry = pool.RetryPolicy{MaxAttempts: 3, Backoff: time.Millisecond}
	})
	rs, err := p.Map(context.Background(), "spin", [][]byte{nil})
	require.NoError(t, err)
	require.Equal(t, pool.StatusTimeout, rs[0].Status)
	require.Equal(t, 3, rs[0].Attempts)
	require.Contains(t, rs[0].Error, "gave up after 3 attempts")
	kts := p.KilledTasks()
	require.Len(t, kts, 1)
	require.Len(t, kts[0].Attempts, 3)
}

func TestCancel(t *testing.T) {
	starts := newTaskStarts()
	p := newPool(t, "tasks", func(c *pool.Config) { c.OnEvent = starts.onEvent })
	ctx, cancel := context.WithCancel(context.Background())
	m, err := p.MapAsync(ctx, "spin", make([][]byte, 6))
	require.NoError(t, err)
	starts.wait(t, 2) // both workers spin
	cancel()
	_, err = m.Wait(context.Background())
	require.ErrorIs(t, err, context.Canceled)
	// The spinning workers were stopped and replaced: the pool still works.
	rs, err := p.Map(context.Background(), "square", ints(4))
	require.NoError(t, err)
	require.Equal(t, []string{"0", "1", "4", "9"}, squares(t, rs))

	t.Run("MapHandle.Cancel", func(t *testing.T) {
		m, err := p.MapAsync(context.Background(), "spin", make([][]byte, 2))
		require.NoError(t, err)
		m.Cancel()
		<-m.Done()
		_, err = m.Wait(context.Background())
		require.ErrorIs(t, err, context.Canceled)
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := p.Map(ctx, "spin", make([][]byte, 2))
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := p.Map(ctx, "square", ints(2))
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestCloseAndTerminate(t *testing.T) {
	before := children(t)
	fds := openFDs(t)
	cfg := pool.Config{Module: testguest.Path(t, "tasks"), Workers: 2, CacheDir: cacheDir(t)}

	t.Run("close finishes work in flight", func(t *testing.T) {
		p, err := pool.New(context.Background(), cfg)
		require.NoError(t, err)
		m, err := p.MapAsync(context.Background(), "slow_square", ints(8))
		require.NoError(t, err)
		require.NoError(t, p.Close())
		rs, err := m.Wait(context.Background())
		require.NoError(t, err)
		require.Equal(t, "49", string(rs[7].Output))
		require.NoError(t, p.Close(), "Close twice")
		_, err = p.Map(context.Background(), "square", ints(1))
		require.ErrorIs(t, err, pool.ErrClosed)
		require.NoError(t, p.Terminate(), "Terminate after Close")
	})
	t.Run("terminate kills now", func(t *testing.T) {
		starts := newTaskStarts()
		c := cfg
		c.OnEvent = starts.onEvent
		p, err := pool.New(context.Background(), c)
		require.NoError(t, err)
		m, err := p.MapAsync(context.Background(), "spin", make([][]byte, 4))
		require.NoError(t, err)
		starts.wait(t, 2) // both workers spin
		start := time.Now()
		require.NoError(t, p.Terminate())
		require.Less(t, time.Since(start), 5*time.Second)
		_, err = m.Wait(context.Background())
		require.ErrorIs(t, err, pool.ErrClosed)
		require.NoError(t, p.Terminate(), "Terminate twice")
		_, err = p.Apply(context.Background(), "square", []byte("1"))
		require.ErrorIs(t, err, pool.ErrClosed)
	})
	// No child processes, no descriptors left behind (goroutines are checked
	// by goleak in TestMain).
	require.ElementsMatch(t, before, children(t))
	require.Equal(t, fds, openFDs(t))
}

func TestKillIdleWorkers(t *testing.T) {
	var mu sync.Mutex
	var pids []int
	p := newPool(t, "tasks", func(c *pool.Config) {
		c.OnEvent = func(e pool.Event) { // called from several goroutines
			if e.Kind == pool.EventWorkerStart {
				mu.Lock()
				pids = append(pids, e.WorkerPID)
				mu.Unlock()
			}
		}
	})
	_, err := p.Map(context.Background(), "square", ints(4))
	require.NoError(t, err)
	mu.Lock()
	first := slices.Clone(pids[:2])
	mu.Unlock()
	for _, pid := range first {
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	}
	// Replacements start at once, without waiting for work.
	eventually(t, 10*time.Second, func() bool { return len(children(t)) >= 2 && !slices.Contains(children(t), strconv.Itoa(first[0])) }, "no replacement workers")
	rs, err := p.Map(context.Background(), "square", ints(4))
	require.NoError(t, err)
	require.Equal(t, []string{"0", "1", "4", "9"}, squares(t, rs))
	require.Empty(t, p.KilledTasks(), "idle deaths blame no task")
}

func TestKillMidBatch(t *testing.T) {
	// One worker, a batch of many tasks: kill it while it runs task 5.
	// Only task 5 is blamed; the tasks queued behind it run once.
	k := newKiller(5)
	p := newPool(t, "tasks", func(c *pool.Config) { c.Workers = 1; c.OnEvent = k.onEvent; c.BatchSize = 64 })
	rs, err := p.Map(context.Background(), "slow_square", ints(12))
	require.NoError(t, err)
	for i, r := range rs {
		if i == 5 {
			require.Equal(t, pool.StatusKilled, r.Status)
			continue
		}
		require.Equal(t, pool.StatusOK, r.Status, "task %d: %s", i, r.Error)
		require.Equal(t, 1, r.Attempts, "task %d was queued behind the killed one and must not be charged", i)
	}
}

func TestMaxTasksPerWorker(t *testing.T) {
	pids := map[int]bool{}
	p := newPool(t, "tasks", func(c *pool.Config) { c.Workers = 1; c.MaxTasksPerWorker = 5; c.BatchSize = 2 })
	rs, err := p.Map(context.Background(), "square", ints(20))
	require.NoError(t, err)
	for _, r := range rs {
		require.Equal(t, pool.StatusOK, r.Status)
		pids[r.Stats.WorkerPID] = true
	}
	require.GreaterOrEqual(t, len(pids), 4, "a worker must be recycled after 5 tasks")
}

func TestBreaker(t *testing.T) {
	// The worker command runs the real worker until the test creates the
	// file "broken"; from then on it fails at once, like a module that
	// crashes its worker at start-up.
	dir := t.TempDir()
	exe, err := os.Executable()
	require.NoError(t, err)
	script := filepath.Join(dir, "worker.sh")
	broken := filepath.Join(dir, "broken")
	starts := filepath.Join(dir, "starts")
	require.NoError(t, os.WriteFile(script, []byte(`#!/bin/sh
echo x >> `+starts+`
if [ ! -e `+broken+` ]; then exec `+exe+` __safepool_worker__; fi
echo "worker refuses to start" >&2
exit 3
`), 0o755))
	var mu sync.Mutex
	var pids []int
	p := newPool(t, "tasks", func(c *pool.Config) {
		c.WorkerCommand = []string{script}
		c.OnEvent = func(e pool.Event) {
			if e.Kind == pool.EventWorkerStart {
				mu.Lock()
				pids = append(pids, e.WorkerPID)
				mu.Unlock()
			}
		}
	})
	m, err := p.MapAsync(context.Background(), "spin", make([][]byte, 2))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(broken, nil, 0o644))
	mu.Lock()
	started := slices.Clone(pids)
	mu.Unlock()
	require.Len(t, started, 2, "New starts both workers")
	for _, pid := range started {
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	}
	select {
	case <-m.Done():
	case <-time.After(20 * time.Second):
		_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		t.Fatalf("the map did not end: breaker not opened (progress %+v, children %v)", m.Progress(), children(t))
	}
	_, err = m.Wait(context.Background())
	// The spinning tasks were killed (skip) if they had started, and the
	// breaker ended the map otherwise.
	if err != nil {
		require.ErrorIs(t, err, pool.ErrCrashLoop)
	}
	_, err = p.Map(context.Background(), "square", ints(1))
	require.ErrorIs(t, err, pool.ErrCrashLoop)
	require.ErrorContains(t, err, "worker refuses to start")
	b, err := os.ReadFile(starts)
	require.NoError(t, err)
	require.Less(t, strings.Count(string(b), "x"), 20, "the pool must not respawn forever")
}

func TestErrorsIsAs(t *testing.T) {
	te := &pool.TaskError{Index: 2, Status: pool.StatusMemoryLimit}
	var err error = te
	require.ErrorIs(t, err, pool.ErrTaskKilled)
	require.False(t, errors.Is(err, pool.ErrTaskFailed))
	var got *pool.TaskError
	require.True(t, errors.As(errors.Join(errors.New("x"), err), &got))
	require.Equal(t, 2, got.Index)
}

// TestLargeBatches sends batches larger than the worker's input pipe, so
// that a batch cannot be queued behind the running one (the pool must then
// hold it back rather than block), with large outputs coming back at the
// same time. Every output must come back whole and in order.
func TestLargeBatches(t *testing.T) {
	p := newPool(t, "tasks", func(c *pool.Config) { c.BatchSize = 8 })
	const n, size = 48, 300 << 10
	inputs := make([][]byte, n)
	for i := range inputs {
		inputs[i] = bytes.Repeat([]byte{byte('a' + i%26)}, size)
	}
	rs, err := p.Map(context.Background(), "echo", inputs)
	require.NoError(t, err)
	require.Len(t, rs, n)
	for i, r := range rs {
		require.Equal(t, pool.StatusOK, r.Status, "task %d: %s", i, r.Error)
		require.True(t, bytes.Equal(inputs[i], r.Output), "task %d: output differs from its input", i)
	}
}
