package pool_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/pool"
)

// The seed document's example: square 0..9 on a pool whose worker is
// SIGKILLed while it runs task 3.
func TestSeed(t *testing.T) {
	ctx := context.Background()
	t.Run("skip", func(t *testing.T) {
		k := newKiller(3)
		p := newPool(t, "tasks", func(c *pool.Config) { c.OnEvent = k.onEvent })
		rs, err := p.Map(ctx, "slow_square", ints(10))
		require.NoError(t, err)
		require.Equal(t, []string{"0", "1", "4", "<killed>", "16", "25", "36", "49", "64", "81"}, squares(t, rs))
		require.Contains(t, rs[3].Error, "killed by SIGKILL")
		kts := p.KilledTasks()
		require.Len(t, kts, 1)
		kt := kts[0]
		require.Equal(t, 3, kt.Index)
		require.Equal(t, "slow_square", kt.Func)
		require.Equal(t, "3", string(kt.Input))
		require.Equal(t, pool.StatusKilled, kt.Status)
		require.Equal(t, "SIGKILL", kt.Signal)
		require.Len(t, kt.Attempts, 1)
		// Only task 3 was blamed: every other task ran once.
		for i, r := range rs {
			require.Equal(t, 1, r.Attempts, "task %d", i)
		}
	})
	t.Run("retry", func(t *testing.T) {
		k := newKiller(3)
		p := newPool(t, "tasks", func(c *pool.Config) { c.OnEvent = k.onEvent; c.KillPolicy = pool.Retry })
		rs, err := p.Map(ctx, "slow_square", ints(10))
		require.NoError(t, err)
		require.Equal(t, []string{"0", "1", "4", "9", "16", "25", "36", "49", "64", "81"}, squares(t, rs))
		require.Equal(t, 2, rs[3].Attempts)
		require.Empty(t, p.KilledTasks())
	})
	t.Run("abort", func(t *testing.T) {
		k := newKiller(3)
		p := newPool(t, "tasks", func(c *pool.Config) { c.OnEvent = k.onEvent; c.KillPolicy = pool.Abort })
		_, err := p.Map(ctx, "slow_square", ints(10))
		require.ErrorIs(t, err, pool.ErrTaskKilled)
		var te *pool.TaskError
		require.True(t, errors.As(err, &te))
		require.Equal(t, 3, te.Index)
		require.Equal(t, "3", string(te.Input))
		require.Equal(t, pool.StatusKilled, te.Status)
		require.Contains(t, err.Error(), "task 3")
		// The pool stays usable.
		rs, err := p.Map(ctx, "square", ints(5))
		require.NoError(t, err)
		require.Equal(t, []string{"0", "1", "4", "9", "16"}, squares(t, rs))
	})
}

func TestSeveralKillsAndTwoMaps(t *testing.T) {
	ctx := context.Background()
	k := newKiller(5, 17, 30, 41)
	k.fn = "slow_square" // square tasks end in microseconds: a kill would miss them
	p := newPool(t, "tasks", func(c *pool.Config) { c.OnEvent = k.onEvent; c.KillPolicy = pool.Retry; c.Retry.MaxAttempts = 2 })
	a, err := p.MapAsync(ctx, "slow_square", ints(50))
	require.NoError(t, err)
	b, err := p.MapAsync(ctx, "square", ints(300))
	require.NoError(t, err)
	ra, err := a.Wait(ctx)
	require.NoError(t, err)
	rb, err := b.Wait(ctx)
	require.NoError(t, err)
	for i, r := range ra {
		require.Equal(t, pool.StatusOK, r.Status, "task %d: %s", i, r.Error)
		require.Equal(t, strconv.Itoa(i*i), string(r.Output))
	}
	for i, r := range rb {
		require.Equal(t, pool.StatusOK, r.Status, "task %d: %s", i, r.Error)
		require.Equal(t, strconv.Itoa(i*i), string(r.Output))
	}
	// Each of the four slow tasks was killed once, while it ran.
	require.Equal(t, 4, a.Progress().Retried)
	for _, i := range []int{5, 17, 30, 41} {
		require.Equal(t, 2, ra[i].Attempts, "task %d", i)
	}
	require.Equal(t, 50, a.Progress().Done)
	require.Equal(t, 300, b.Progress().Total)
}

func TestAbortOnLastTask(t *testing.T) {
	// The killed task is the map's last result: the abort must still win.
	p := newPool(t, "tasks", func(c *pool.Config) { c.MemoryLimit = 16 << 20; c.KillPolicy = pool.Abort; c.Workers = 1 })
	rs, err := p.Map(context.Background(), "memhog", [][]byte{[]byte("1"), []byte("64")})
	require.ErrorIs(t, err, pool.ErrTaskKilled)
	var te *pool.TaskError
	require.ErrorAs(t, err, &te)
	require.Equal(t, 1, te.Index)
	require.Equal(t, pool.StatusMemoryLimit, rs[1].Status)
	require.Len(t, p.KilledTasks(), 1)
}
