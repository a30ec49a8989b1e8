package pool_test

import (
	"context"
	"iter"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/pool"
)

// counted yields n inputs and counts how many were pulled. Streams pull
// on a goroutine of their own, so the count is atomic.
func counted(n int, pulled *atomic.Int64) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for i := range n {
			pulled.Store(int64(i + 1))
			if !yield([]byte(strconv.Itoa(i))) {
				return
			}
		}
	}
}

func TestImap(t *testing.T) {
	p := newPool(t, "tasks", nil)
	ctx := context.Background()
	t.Run("ordered with a bounded window", func(t *testing.T) {
		const n, window = 5000, 64
		var pulled atomic.Int64
		i := 0
		for r, err := range p.Imap(ctx, "square", counted(n, &pulled), window) {
			require.NoError(t, err)
			require.Equal(t, i, r.Index)
			require.Equal(t, strconv.Itoa(i*i), string(r.Output))
			require.LessOrEqual(t, int(pulled.Load())-i, window+1, "the stream ran ahead of its window")
			i++
		}
		require.Equal(t, n, i)
	})
	t.Run("unordered", func(t *testing.T) {
		var pulled atomic.Int64
		var seen []int
		for r, err := range p.ImapUnordered(ctx, "square", counted(500, &pulled), 32) {
			require.NoError(t, err)
			require.Equal(t, strconv.Itoa(r.Index*r.Index), string(r.Output))
			seen = append(seen, r.Index)
		}
		slices.Sort(seen)
		require.Len(t, seen, 500)
		for i, v := range seen {
			require.Equal(t, i, v, "every index exactly once")
		}
	})
	t.Run("stop early", func(t *testing.T) {
		var pulled atomic.Int64
		got := 0
		for range p.Imap(ctx, "square", counted(100000, &pulled), 16) {
			got++
			if got == 10 {
				break
			}
		}
		require.Equal(t, 10, got)
		require.Less(t, pulled.Load(), int64(100))
		// The pool is fine afterwards.
		rs, err := p.Map(ctx, "square", ints(3))
		require.NoError(t, err)
		require.Equal(t, []string{"0", "1", "4"}, squares(t, rs))
	})
	t.Run("empty", func(t *testing.T) {
		var pulled atomic.Int64
		for range p.Imap(ctx, "square", counted(0, &pulled), 0) {
			t.Fatal("no results expected")
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		var pulled atomic.Int64
		var last error
		for _, err := range p.Imap(ctx, "spin", counted(4, &pulled), 0) {
			last = err
		}
		require.ErrorIs(t, last, context.DeadlineExceeded)
	})
	t.Run("unknown function", func(t *testing.T) {
		var pulled atomic.Int64
		var last error
		for _, err := range p.Imap(ctx, "nope", counted(4, &pulled), 0) {
			last = err
		}
		require.ErrorIs(t, last, pool.ErrUnknownFunc)
	})
}

func TestImapWithKills(t *testing.T) {
	k := newKiller(7, 23)
	p := newPool(t, "tasks", func(c *pool.Config) { c.OnEvent = k.onEvent })
	var pulled atomic.Int64
	i := 0
	for r, err := range p.Imap(context.Background(), "slow_square", counted(30, &pulled), 8) {
		require.NoError(t, err)
		require.Equal(t, i, r.Index)
		if i == 7 || i == 23 {
			require.Equal(t, pool.StatusKilled, r.Status)
		} else {
			require.Equal(t, pool.StatusOK, r.Status, "task %d: %s", i, r.Error)
		}
		i++
	}
	require.Equal(t, 30, i)
	require.Len(t, p.KilledTasks(), 2)
}

func TestTyped(t *testing.T) {
	p := newPool(t, "tasks", nil)
	ctx := context.Background()
	rs, err := pool.MapJSON[int, int](ctx, p, "square", []int{1, 2, 3})
	require.NoError(t, err)
	for i, r := range rs {
		require.Equal(t, pool.StatusOK, r.Status)
		require.Equal(t, (i+1)*(i+1), r.Value)
	}
	r, err := pool.ApplyJSON[int, int](ctx, p, "square", 9)
	require.NoError(t, err)
	require.Equal(t, 81, r.Value)

	t.Run("output that does not decode", func(t *testing.T) {
		r, err := pool.ApplyJSON[string, int](ctx, p, "echo", "not a number")
		require.NoError(t, err)
		require.Equal(t, pool.StatusError, r.Status)
		require.Contains(t, r.Error, "decode output")
	})
	t.Run("input that does not encode", func(t *testing.T) {
		_, err := pool.MapJSON[chan int, int](ctx, p, "square", []chan int{make(chan int)})
		require.ErrorContains(t, err, "encode input 0")
	})
}

func TestHungWorker(t *testing.T) {
	// SIGSTOP freezes the worker: its own watchdog cannot run, so the host
	// must kill it after the timeout plus the grace period.
	p := newPool(t, "tasks", func(c *pool.Config) {
		c.Workers = 1
		c.Timeout = 300 * time.Millisecond
		c.OnEvent = func(e pool.Event) {
			if e.Kind == pool.EventTaskStart && e.Index == 0 {
				_ = syscall.Kill(e.WorkerPID, syscall.SIGSTOP)
			}
		}
	})
	start := time.Now()
	rs, err := p.Map(context.Background(), "slow_square", ints(2))
	require.NoError(t, err)
	require.Equal(t, pool.StatusTimeout, rs[0].Status, rs[0].Error)
	require.Contains(t, rs[0].Error, "stopped answering")
	require.Equal(t, "1", string(rs[1].Output))
	require.Less(t, time.Since(start), 10*time.Second)
}

func TestKillWhileStarting(t *testing.T) {
	// Kill every worker the moment it finishes its handshake, a few times;
	// the pool replaces them and the map completes.
	kills := 0
	p := newPool(t, "tasks", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for kills < 3 {
			for _, pid := range children(t) {
				n, _ := strconv.Atoi(pid)
				if syscall.Kill(n, syscall.SIGKILL) == nil {
					kills++
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	<-done
	rs, err := p.Map(context.Background(), "square", ints(10))
	require.NoError(t, err)
	for i, r := range rs {
		require.Equal(t, strconv.Itoa(i*i), string(r.Output))
	}
}

// TestImapSlowInput: results are yielded while the stream waits for its
// next input, and nil inputs are inputs.
func TestImapSlowInput(t *testing.T) {
	p := newPool(t, "wchaos", nil)
	gate := make(chan struct{})
	inputs := func(yield func([]byte) bool) {
		if !yield([]byte("3")) {
			return
		}
		<-gate // the input stalls, like a pipe with nothing to read
		yield(nil)
	}
	var got []pool.Result
	for r, err := range p.Imap(context.Background(), "square", inputs, 8) {
		require.NoError(t, err)
		got = append(got, r)
		if len(got) == 1 {
			close(gate) // the first result came while the input stalled
		}
	}
	require.Len(t, got, 2)
	require.Equal(t, "9", string(got[0].Output))
	require.Equal(t, pool.StatusError, got[1].Status, "a nil input runs as an empty one")
}

// TestImapAbortByLastTask: a stream whose last task aborts it ends with the
// error, after that task's result.
func TestImapAbortByLastTask(t *testing.T) {
	p := newPool(t, "tasks", func(c *pool.Config) { c.Workers = 1; c.OnError = pool.Abort })
	for range 20 {
		var n int
		var final error
		for r, err := range p.Imap(context.Background(), "square", slices.Values([][]byte{[]byte("1"), []byte("x")}), 8) {
			if err != nil {
				final = err
				break
			}
			require.Equal(t, n, r.Index)
			n++
		}
		require.Equal(t, 2, n, "both results, the aborting one included")
		require.ErrorIs(t, final, pool.ErrTaskFailed)
	}
}
