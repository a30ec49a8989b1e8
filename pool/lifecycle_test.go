package pool_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/pool"
)

// storm SIGKILLs every child of the test process as soon as it appears,
// the way an OOM killer under pressure would, until stop is called.
type storm struct {
	kills atomic.Int64
	quit  chan struct{}
	done  chan struct{}
}

func startStorm() *storm {
	s := &storm{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		seen := map[int]bool{} // a zombie can be "killed" again until it is reaped
		for {
			select {
			case <-s.quit:
				return
			default:
			}
			for _, pid := range children(nil) {
				n, _ := strconv.Atoi(pid)
				if n > 0 && !seen[n] && syscall.Kill(n, syscall.SIGKILL) == nil {
					seen[n] = true
					s.kills.Add(1)
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return s
}

func (s *storm) stop() int64 {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.done
	return s.kills.Load()
}

// TestStartupStorm: every worker is killed as soon as it appears for 3 s,
// then the storm stops. New and a map already running both ride it out,
// and every task ends ok under retry.
func TestStartupStorm(t *testing.T) {
	t.Run("during New", func(t *testing.T) {
		s := startStorm()
		time.AfterFunc(3*time.Second, func() { s.stop() })
		defer s.stop()
		p := newPool(t, "wchaos", func(c *pool.Config) { c.KillPolicy = pool.Retry })
		require.Positive(t, s.stop(), "the storm killed no worker")
		rs, err := p.Map(context.Background(), "square", ints(20))
		require.NoError(t, err)
		for i, r := range rs {
			require.Equal(t, strconv.Itoa(i*i), string(r.Output), "task %d: %s", i, r.Error)
		}
	})
	t.Run("during a map", func(t *testing.T) {
		p := newPool(t, "wchaos", func(c *pool.Config) {
			c.KillPolicy = pool.Retry
			c.Retry.MaxAttempts = 1000 // the storm also kills workers mid-task
			c.Retry.Backoff = time.Millisecond
		})
		s := startStorm()
		defer s.stop()
		m, err := p.MapAsync(context.Background(), "slow_square", ints(40))
		require.NoError(t, err)
		time.Sleep(3 * time.Second) // the storm's length, not a wait for an event
		kills := s.stop()
		rs, err := m.Wait(context.Background())
		require.NoError(t, err)
		require.Positive(t, kills)
		for i, r := range rs {
			require.Equal(t, pool.StatusOK, r.Status, "task %d: %s", i, r.Error)
			require.Equal(t, strconv.Itoa(i*i), string(r.Output))
		}
		require.NoError(t, p.Err())
	})
}

// TestEndlessStorm: when workers are killed as they start and it never
// stops, a map from context.Background() ends by itself with a
// *StartError that says what happened, and new maps fail the same way.
// Once the storm stops the pool recovers.
func TestEndlessStorm(t *testing.T) {
	var starts atomic.Int64
	p := newPool(t, "wchaos", func(c *pool.Config) {
		c.StartGiveUp = 2 * time.Second
		c.Workers = 1
		c.OnEvent = func(e pool.Event) {
			if e.Kind == pool.EventWorkerStart {
				starts.Add(1)
			}
		}
	})
	s := startStorm()
	defer s.stop()
	// Kill the running worker too: the storm only sees new children.
	for _, pid := range children(t) {
		n, _ := strconv.Atoi(pid)
		_ = syscall.Kill(n, syscall.SIGKILL)
	}
	begin := time.Now()
	startsBefore := starts.Load()
	rs, err := p.Map(context.Background(), "square", ints(5))
	took := time.Since(begin)
	var se *pool.StartError
	require.ErrorAs(t, err, &se)
	require.ErrorIs(t, err, pool.ErrCrashLoop)
	require.True(t, se.Usable)
	require.Contains(t, se.What, "SIGKILL")
	require.GreaterOrEqual(t, se.Count, 3)
	require.Contains(t, err.Error(), "times in")
	require.Less(t, took, 30*time.Second)
	require.Len(t, rs, 5)
	for i, r := range rs {
		require.Equal(t, i, r.Index)
		require.Equal(t, pool.StatusNotRun, r.Status)
		require.Contains(t, r.Error, "workers could not be kept up")
	}
	// Respawns back off: nowhere near one per millisecond.
	require.Less(t, s.kills.Load(), int64(30), "respawns did not back off")
	require.Equal(t, startsBefore, starts.Load(), "no worker finished its handshake during the storm")

	_, err = p.Map(context.Background(), "square", ints(1))
	require.ErrorAs(t, err, &se, "new maps fail while the breaker is open")
	require.Error(t, p.Err())

	s.stop()
	eventually(t, 20*time.Second, func() bool { return p.Err() == nil }, "the pool did not recover after the storm")
	rs, err = p.Map(context.Background(), "square", ints(3))
	require.NoError(t, err)
	require.Equal(t, []string{"0", "1", "4"}, squares(t, rs))
}

// TestKilledAfterHandshake: every worker is killed the moment it finishes
// its handshake. An Apply with no deadline ends by itself.
func TestKilledAfterHandshake(t *testing.T) {
	var storming atomic.Bool
	p := newPool(t, "wchaos", func(c *pool.Config) {
		c.Workers = 1
		c.StartGiveUp = 2 * time.Second
		c.OnEvent = func(e pool.Event) {
			if e.Kind == pool.EventWorkerStart && storming.Load() {
				_ = syscall.Kill(e.WorkerPID, syscall.SIGKILL)
			}
		}
	})
	storming.Store(true)
	for _, pid := range children(t) {
		n, _ := strconv.Atoi(pid)
		_ = syscall.Kill(n, syscall.SIGKILL)
	}
	r, err := p.Apply(context.Background(), "square", []byte("3"))
	var se *pool.StartError
	require.ErrorAs(t, err, &se)
	require.Contains(t, se.What, "before running a task")
	require.Equal(t, pool.StatusNotRun, r.Status)
	storming.Store(false)
	eventually(t, 20*time.Second, func() bool { return p.Err() == nil }, "the pool did not recover")
	r, err = p.Apply(context.Background(), "square", []byte("3"))
	require.NoError(t, err)
	require.Equal(t, "9", string(r.Output))
}

// TestModuleCrashesAtStart: a worker that fails by itself as it starts is
// the module's problem: New reports it at once, and it is never taken for
// a kill from outside.
func TestModuleCrashesAtStart(t *testing.T) {
	script := filepath.Join(t.TempDir(), "worker.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\necho 'worker refuses to start' >&2\nexit 3\n"), 0o755))
	_, err := pool.New(context.Background(), pool.Config{Module: testguest.Path(t, "wsquare"), Workers: 2,
		CacheDir: cacheDir(t), WorkerCommand: []string{script}})
	require.Error(t, err)
	require.NotErrorIs(t, err, pool.ErrCrashLoop)
	require.ErrorContains(t, err, "worker refuses to start")
	require.ErrorContains(t, err, "exited with code 3")
}

// TestNewBounds: New's start-up is bounded by its context and by
// StartTimeout, for a worker that never shakes hands.
func TestNewBounds(t *testing.T) {
	script := filepath.Join(t.TempDir(), "worker.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755))
	cfg := pool.Config{Module: testguest.Path(t, "wsquare"), Workers: 2, CacheDir: cacheDir(t), WorkerCommand: []string{script}}
	before := children(t)

	t.Run("context", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := pool.New(ctx, cfg)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, time.Since(start), 10*time.Second)
		require.ElementsMatch(t, before, children(t), "New left workers behind")
	})
	t.Run("start timeout", func(t *testing.T) {
		c := cfg
		c.StartTimeout = 300 * time.Millisecond
		_, err := pool.New(context.Background(), c)
		require.ErrorContains(t, err, "no handshake within 300ms")
		require.ElementsMatch(t, before, children(t), "New left workers behind")
	})
}

// TestTooManyWorkers: more workers than the machine's memory can hold are
// refused, with the way to override it; Overcommit starts them anyway.
func TestTooManyWorkers(t *testing.T) {
	restore := pool.SetMemAvailable(func() (int64, error) { return 1 << 30, nil }) // 1 GiB
	defer restore()
	_, err := pool.New(context.Background(), pool.Config{Module: testguest.Path(t, "wsquare"), Workers: 1000, CacheDir: cacheDir(t)})
	require.ErrorIs(t, err, pool.ErrConfig)
	require.ErrorContains(t, err, "Workers+Spares is 1000")
	require.ErrorContains(t, err, "holds about 9 workers")
	require.ErrorContains(t, err, "Overcommit")

	p := newPool(t, "wsquare", func(c *pool.Config) { c.Workers = 12; c.Overcommit = true })
	rs, err := p.Map(context.Background(), "square", ints(3))
	require.NoError(t, err)
	require.Equal(t, []string{"0", "1", "4"}, squares(t, rs))
}

// TestUnwritableCache: a cache directory the pool cannot write to is said
// once, as a warning; the pool still runs.
func TestUnwritableCache(t *testing.T) {
	// Permissions do not stop root, which the tests may run as: the cache
	// path goes under a file instead.
	blocker := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o644))
	var warned atomic.Int64
	p := newPool(t, "wsquare", func(c *pool.Config) {
		c.CacheDir = filepath.Join(blocker, "cache") // under a file: cannot be made
		c.OnEvent = func(e pool.Event) {
			if e.Kind == pool.EventWarning {
				warned.Add(1)
			}
		}
	})
	require.Len(t, p.Warnings(), 1)
	require.Contains(t, p.Warnings()[0], "cannot be written")
	require.Contains(t, p.Warnings()[0], "CacheDir")
	require.Equal(t, int64(1), warned.Load())
	rs, err := p.Map(context.Background(), "square", ints(3))
	require.NoError(t, err)
	require.Equal(t, []string{"0", "1", "4"}, squares(t, rs))
}

// TestKilledListBounded: the pool's killed-task list keeps the most recent
// KilledLimit tasks, and inputs only up to KilledInputLimit, while a map's
// own list is complete.
func TestKilledListBounded(t *testing.T) {
	p := newPool(t, "tasks", func(c *pool.Config) {
		c.Workers = 1 // one worker: the results come in index order
		c.KilledLimit = 5
		c.KilledInputLimit = 8
		c.Timeout = 50 * time.Millisecond
	})
	inputs := make([][]byte, 12)
	for i := range inputs {
		// sleep takes milliseconds; leading zeros make some inputs long.
		inputs[i] = []byte("1000")
		if i%2 == 1 {
			inputs[i] = []byte("000000000001000")
		}
	}
	m, err := p.MapAsync(context.Background(), "sleep", inputs)
	require.NoError(t, err)
	rs, err := m.Wait(context.Background())
	require.NoError(t, err)
	for _, r := range rs {
		require.Equal(t, pool.StatusTimeout, r.Status)
	}
	own := m.KilledTasks()
	require.Len(t, own, 12, "a map's own list is complete")
	for _, kt := range own {
		require.Equal(t, inputs[kt.Index], kt.Input)
	}
	require.Equal(t, 12, p.KilledCount())
	kept := p.KilledTasks()
	require.Equal(t, []int{7, 8, 9, 10, 11}, indices(kept), "the pool keeps the most recent")
	for _, kt := range kept {
		require.Equal(t, len(inputs[kt.Index]), kt.InputSize)
		if len(inputs[kt.Index]) > 8 {
			require.Nil(t, kt.Input)
		} else {
			require.Equal(t, inputs[kt.Index], kt.Input)
		}
	}
	require.Len(t, p.TakeKilledTasks(), 5)
	require.Empty(t, p.KilledTasks(), "Take clears the list")
	require.Equal(t, 12, p.KilledCount(), "the count stays")
}

func indices(kts []pool.KilledTask) []int {
	var out []int
	for _, kt := range kts {
		out = append(out, kt.Index)
	}
	return out
}

// TestNotRun: slots that never ran have their own status, their index and a
// reason, after an abort, a cancel, and an Apply that cannot run.
func TestNotRun(t *testing.T) {
	p := newPool(t, "tasks", func(c *pool.Config) { c.Workers = 1; c.OnError = pool.Abort; c.BatchSize = 1 })
	t.Run("abort", func(t *testing.T) {
		inputs := ints(10)
		inputs[4] = []byte("x") // square fails on input that is not a number
		rs, err := p.Map(context.Background(), "square", inputs)
		require.ErrorIs(t, err, pool.ErrTaskFailed)
		require.Len(t, rs, 10)
		for i, r := range rs {
			require.Equal(t, i, r.Index)
			switch {
			case i < 4:
				require.Equal(t, pool.StatusOK, r.Status)
			case i == 4:
				require.Equal(t, pool.StatusError, r.Status)
			default:
				require.Equal(t, pool.StatusNotRun, r.Status)
				require.Equal(t, "not run: the map was aborted by task 4 (error)", r.Error)
			}
		}
	})
	t.Run("cancel", func(t *testing.T) {
		started := make(chan struct{}, 1)
		p := newPool(t, "tasks", func(c *pool.Config) {
			c.Workers = 1
			c.OnEvent = func(e pool.Event) {
				if e.Kind == pool.EventTaskStart {
					select {
					case started <- struct{}{}:
					default:
					}
				}
			}
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		m, err := p.MapAsync(ctx, "sleep", [][]byte{[]byte("5000"), []byte("1")})
		require.NoError(t, err)
		<-started
		cancel()
		rs, err := m.Wait(context.Background())
		require.ErrorIs(t, err, context.Canceled)
		for i, r := range rs {
			require.Equal(t, i, r.Index)
			require.Equal(t, pool.StatusNotRun, r.Status)
			require.Equal(t, "not run: the map was canceled", r.Error)
		}
	})
	t.Run("unknown function", func(t *testing.T) {
		r, err := p.Apply(context.Background(), "nope", []byte("1"))
		require.ErrorIs(t, err, pool.ErrUnknownFunc)
		require.Equal(t, pool.StatusNotRun, r.Status)
		require.Contains(t, r.Error, "unknown function")
		require.Equal(t, "not_run", r.Status.String())
	})
}

// TestImapAbortYieldsFinished: an aborted stream yields every result that
// finished before the abort, in input order, and then the error. One
// worker runs the tasks in order, so tasks 0..4 have finished when task 5
// aborts the stream, and the later tasks of its batch are dropped.
func TestImapAbortYieldsFinished(t *testing.T) {
	p := newPool(t, "tasks", func(c *pool.Config) { c.Workers = 1; c.OnError = pool.Abort })
	inputs := func(yield func([]byte) bool) {
		for i := range 20 {
			in := []byte(strconv.Itoa(i))
			if i == 5 {
				in = []byte("x")
			}
			if !yield(in) {
				return
			}
		}
	}
	for _, ordered := range []bool{true, false} {
		t.Run(map[bool]string{true: "ordered", false: "unordered"}[ordered], func(t *testing.T) {
			for range 20 { // the race this guards against was a select between two ready cases
				seq := p.Imap
				if !ordered {
					seq = p.ImapUnordered
				}
				var got []int
				var final error
				for r, err := range seq(context.Background(), "square", inputs, 64) {
					if err != nil {
						final = err
						break
					}
					got = append(got, r.Index)
				}
				require.ErrorIs(t, final, pool.ErrTaskFailed)
				if !ordered {
					slices.Sort(got)
				}
				require.Equal(t, []int{0, 1, 2, 3, 4, 5}, got)
			}
		})
	}
}

// TestSmallTimeoutStarts: the per-task Timeout bounds tasks, never a Go
// guest's _initialize, so a tiny one still starts the pool.
func TestSmallTimeoutStarts(t *testing.T) {
	for _, d := range []time.Duration{time.Microsecond, time.Millisecond, 5 * time.Millisecond} {
		t.Run(d.String(), func(t *testing.T) {
			p := newPool(t, "tasks", func(c *pool.Config) { c.Timeout = d; c.Workers = 1 })
			r, err := p.Apply(context.Background(), "spin", nil)
			require.NoError(t, err)
			require.Equal(t, pool.StatusTimeout, r.Status, r.Error)
		})
	}
}

// TestErrorsAreOneLine: a Go guest that runs out of memory gives a
// one-line error naming the cap, in its result and in the killed-task
// list; the trap and the guest's dump are in the log.
func TestErrorsAreOneLine(t *testing.T) {
	p := newPool(t, "tasks", func(c *pool.Config) { c.MemoryLimit = 32 << 20; c.Workers = 1 })
	r, err := p.Apply(context.Background(), "memhog", []byte("1000000"))
	require.NoError(t, err)
	require.Equal(t, pool.StatusMemoryLimit, r.Status)
	require.Equal(t, "memory limit of 32 MiB reached", r.Error)
	require.NotEmpty(t, r.Log, "the trap and the guest's stderr go to the log")
	kts := p.KilledTasks()
	require.Len(t, kts, 1)
	require.Equal(t, r.Error, kts[0].Reason)
}
