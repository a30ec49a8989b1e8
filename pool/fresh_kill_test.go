package pool_test

import (
	"context"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/pool"
)

// A FreshInstance worker resets its instance after each task, once the
// batch's results are sent. A real SIGKILL mid-task blames only that task,
// and one that lands once a task's result is out (the worker then resets,
// or runs the next task) loses nothing: the replacement worker starts from
// a new snapshot and every result is right, in order.
func TestFreshInstanceKills(t *testing.T) {
	t.Run("mid-task, skip", func(t *testing.T) {
		k := newKiller(5)
		p := newPool(t, "tasks", func(c *pool.Config) {
			c.Workers, c.BatchSize, c.FreshInstance, c.OnEvent = 1, 64, true, k.onEvent
		})
		rs, err := p.Map(context.Background(), "slow_square", ints(12))
		require.NoError(t, err)
		require.Equal(t, []int{5}, k.killed)
		for i, r := range rs {
			if i == 5 {
				require.Equal(t, pool.StatusKilled, r.Status)
				continue
			}
			require.Equal(t, pool.StatusOK, r.Status, "task %d: %s", i, r.Error)
			require.Equal(t, strconv.Itoa(i*i), string(r.Output), "task %d", i)
			require.Equal(t, 1, r.Attempts, "task %d", i)
		}
		require.Len(t, p.KilledTasks(), 1)
	})

	t.Run("after a result, retry", func(t *testing.T) {
		var once sync.Once
		var killed bool
		p := newPool(t, "tasks", func(c *pool.Config) {
			c.Workers, c.BatchSize, c.FreshInstance, c.KillPolicy = 1, 64, true, pool.Retry
			c.OnEvent = func(e pool.Event) {
				if e.Kind == pool.EventTaskEnd && e.Index == 3 {
					once.Do(func() { killed = syscall.Kill(e.WorkerPID, syscall.SIGKILL) == nil })
				}
			}
		})
		rs, err := p.Map(context.Background(), "slow_square", ints(12))
		require.NoError(t, err)
		require.True(t, killed, "the worker was not killed: the test tested nothing")
		extra := 0
		for i, r := range rs {
			require.Equal(t, pool.StatusOK, r.Status, "task %d: %s", i, r.Error)
			require.Equal(t, strconv.Itoa(i*i), string(r.Output), "task %d", i)
			extra += r.Attempts - 1
		}
		require.LessOrEqual(t, extra, 1, "only the task running at the kill, if any, runs again")
		require.Empty(t, p.KilledTasks())
	})
}
