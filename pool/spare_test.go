package pool_test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/pool"
)

// events records a pool's events for a test.
type events struct {
	mu  sync.Mutex
	all []pool.Event
	k   *killer
}

func (e *events) on(ev pool.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
	if e.k != nil {
		e.k.onEvent(ev)
	}
}

// pids returns the worker PIDs of the events of kind k, in order.
func (e *events) pids(k pool.EventKind) []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []int
	for _, ev := range e.all {
		if ev.Kind == k {
			out = append(out, ev.WorkerPID)
		}
	}
	return out
}

// TestSpareReplacesKilledWorker: with a spare, a worker SIGKILLed in the
// middle of a task is replaced by the spare at once, the killed task's
// retry runs there, and a new spare is started in the background.
func TestSpareReplacesKilledWorker(t *testing.T) {
	ev := &events{k: newKiller(3)}
	p := newPool(t, "tasks", func(c *pool.Config) {
		c.Workers, c.Spares = 1, 1
		c.OnEvent, c.KillPolicy = ev.on, pool.Retry
		c.BatchSize = 1
	})
	eventually(t, time.Minute, func() bool { return len(ev.pids(pool.EventWorkerStart)) == 2 }, "the spare never started")
	starts := ev.pids(pool.EventWorkerStart)

	rs, err := p.Map(context.Background(), "slow_square", ints(8)) // 30 ms each: the kill lands mid-task
	require.NoError(t, err)
	// The worker and the spare start side by side: the one that ran the
	// first task is the worker.
	active := rs[0].Stats.WorkerPID
	require.Contains(t, starts, active)
	spare := starts[0]
	if spare == active {
		spare = starts[1]
	}
	require.Equal(t, []int{3}, ev.k.killed, "the killer fired once")
	for i, r := range rs {
		require.Equal(t, pool.StatusOK, r.Status, "task %d: %s", i, r.Error)
		require.Equal(t, strconv.Itoa(i*i), string(r.Output))
	}
	require.Equal(t, 2, rs[3].Attempts, "the killed task ran again")
	require.Equal(t, spare, rs[3].Stats.WorkerPID, "the retry ran on the promoted spare")
	require.Equal(t, active, rs[0].Stats.WorkerPID)
	require.Equal(t, []int{spare}, ev.pids(pool.EventSparePromoted))

	// A new spare comes up in the background, and the pool still works.
	eventually(t, time.Minute, func() bool { return len(ev.pids(pool.EventWorkerStart)) == 3 }, "no new spare after the promotion")
	r, err := p.Apply(context.Background(), "square", []byte("9"))
	require.NoError(t, err)
	require.Equal(t, "81", string(r.Output))
}

// TestDeadSpareIsNotUsed: a spare killed while it waits is never given
// tasks: the next replacement skips it and starts a worker (or takes the
// next spare), and every task still completes.
func TestDeadSpareIsNotUsed(t *testing.T) {
	ev := &events{}
	p := newPool(t, "tasks", func(c *pool.Config) {
		c.Workers, c.Spares = 1, 1
		c.OnEvent, c.KillPolicy = ev.on, pool.Retry
	})
	eventually(t, time.Minute, func() bool { return len(ev.pids(pool.EventWorkerStart)) == 2 }, "the spare never started")
	starts := ev.pids(pool.EventWorkerStart)
	active, spare := starts[0], starts[1]
	require.NoError(t, syscall.Kill(spare, syscall.SIGKILL))
	// Once reaped, the spare is known dead; a spare that dies after it was
	// promoted is an ordinary worker death, tested elsewhere.
	eventually(t, 10*time.Second, func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(spare))
		return os.IsNotExist(err)
	}, "the killed spare was not reaped")
	require.NoError(t, syscall.Kill(active, syscall.SIGKILL))

	rs, err := p.Map(context.Background(), "square", ints(20))
	require.NoError(t, err)
	for i, r := range rs {
		require.Equal(t, pool.StatusOK, r.Status, "task %d: %s", i, r.Error)
		require.NotEqual(t, spare, r.Stats.WorkerPID, "task %d ran on the dead spare", i)
		require.NotEqual(t, active, r.Stats.WorkerPID, "task %d ran on the dead worker", i)
	}
	require.NotContains(t, ev.pids(pool.EventSparePromoted), spare, "the dead spare was promoted")
	require.Contains(t, ev.pids(pool.EventWorkerExit), spare, "the dead spare's end is reported")
}

// TestSparesStopWithThePool: Close and Terminate stop the spares too.
func TestSparesStopWithThePool(t *testing.T) {
	before := children(t)
	for _, term := range []bool{false, true} {
		ev := &events{}
		p, err := pool.New(context.Background(), pool.Config{Module: testguest.Path(t, "wsquare"), Workers: 1, Spares: 2, CacheDir: cacheDir(t), OnEvent: ev.on})
		require.NoError(t, err)
		eventually(t, time.Minute, func() bool { return len(ev.pids(pool.EventWorkerStart)) == 3 }, "the spares never started")
		if term {
			require.NoError(t, p.Terminate())
		} else {
			require.NoError(t, p.Close())
		}
		require.ElementsMatch(t, before, children(t), "a worker outlived the pool (terminate=%v)", term)
		require.Len(t, ev.pids(pool.EventWorkerExit), 3, "every worker's end is reported")
	}
	_, err := pool.New(context.Background(), pool.Config{Module: testguest.Path(t, "wsquare"), Spares: -1})
	require.ErrorContains(t, err, "Spares is -1")
}
