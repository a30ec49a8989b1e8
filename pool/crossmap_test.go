package pool_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/pool"
)

// Cancelling one map (or aborting it) stops the workers that hold its
// tasks. A worker's batch can mix tasks of several maps, so the task that
// is running when the worker is stopped may belong to another map: that
// task is innocent and must run again, not be reported killed.
func TestCancelSparesOtherMaps(t *testing.T) {
	var (
		mu      sync.Mutex
		p       *pool.Pool
		a, b    *pool.MapHandle
		exits   int
		fired   bool
		started = make(chan struct{})
	)
	ctx := context.Background()
	p = newPool(t, "wchaos", func(c *pool.Config) {
		c.Workers = 1
		c.BatchSize = 64
		c.OnEvent = func(e pool.Event) {
			// Called from the pool's only driver, which waits for it: what
			// happens here happens before the driver sends its next batch.
			mu.Lock()
			defer mu.Unlock()
			switch {
			case e.Kind == pool.EventWorkerExit:
				exits++
			case e.Kind == pool.EventTaskStart && e.Func == "big" && b == nil:
				// The blocker runs: queue b then a, so that the next batch
				// holds all of b and the head of a.
				var err error
				b, err = p.MapAsync(ctx, "slow_square", ints(20))
				if err == nil {
					a, err = p.MapAsync(ctx, "square", ints(20))
				}
				if err != nil {
					panic(err)
				}
				close(started)
			case e.Kind == pool.EventTaskStart && e.Func == "slow_square" && e.Index == 3 && !fired:
				// b's tasks take 30 ms each: a's first task, queued behind
				// them in the same batch, is still waiting.
				fired = true
				a.Cancel()
			}
		}
	})
	blocker, err := p.MapAsync(ctx, "big", [][]byte{[]byte("1")})
	require.NoError(t, err)
	<-started
	_, err = blocker.Wait(ctx)
	require.NoError(t, err)
	rs, err := b.Wait(ctx)
	require.NoError(t, err)
	_, err = a.Wait(ctx)
	require.ErrorIs(t, err, context.Canceled)
	mu.Lock()
	gotFired, gotExits := fired, exits
	mu.Unlock() // before any require: the pool's cleanup calls OnEvent
	require.True(t, gotFired)
	require.Equal(t, 1, gotExits, "cancelling a stops the worker that holds its tasks")
	for i, r := range rs {
		require.Equal(t, pool.StatusOK, r.Status, "task %d of the other map: %s", i, r.Error)
		require.Equal(t, strconv.Itoa(i*i), string(r.Output))
	}
	require.Empty(t, b.KilledTasks())
	require.Empty(t, p.KilledTasks(), "nothing was killed from outside")
}
