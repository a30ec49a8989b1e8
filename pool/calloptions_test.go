package pool_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/pool"
)

// TestCallOptions: a map's own timeout and memory cap apply to its tasks
// only, within the pool's; the next call without them gets the pool's.
func TestCallOptions(t *testing.T) {
	p, err := pool.New(context.Background(), pool.Config{
		Module: testguest.Path(t, "tasks"), Workers: 1, CacheDir: cacheDir(t),
		Timeout: 20 * time.Second, MemoryLimit: 64 << 20,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Terminate() })
	ctx := context.Background()

	r, err := p.Apply(ctx, "sleep", []byte("2000"), pool.WithTimeout(200*time.Millisecond))
	require.NoError(t, err)
	require.Equal(t, pool.StatusTimeout, r.Status, r.Error)
	require.Equal(t, "task ran past its timeout of 200ms and was stopped", r.Error)

	rs, err := p.Map(ctx, "memhog", [][]byte{[]byte("40"), []byte("1")}, pool.WithMemoryLimit(32<<20))
	require.NoError(t, err)
	require.Equal(t, pool.StatusMemoryLimit, rs[0].Status, rs[0].Error)
	require.Equal(t, int64(32<<20), rs[0].Stats.MemoryLimit)
	require.Equal(t, pool.StatusOK, rs[1].Status, rs[1].Error)

	// Without options, the pool's limits again.
	r, err = p.Apply(ctx, "memhog", []byte("40"))
	require.NoError(t, err)
	require.Equal(t, pool.StatusOK, r.Status, r.Error)
	r, err = p.Apply(ctx, "sleep", []byte("300"))
	require.NoError(t, err)
	require.Equal(t, pool.StatusOK, r.Status, r.Error)
}

// TestCallOptionsRefused: limits above the pool's, or that it cannot
// enforce, are refused with ErrCallOption and nothing runs.
func TestCallOptionsRefused(t *testing.T) {
	mod := testguest.Path(t, "wsquare")
	p, err := pool.New(context.Background(), pool.Config{Module: mod, Workers: 1, CacheDir: cacheDir(t), Timeout: time.Second, MemoryLimit: 16 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Terminate() })
	noTimeout, err := pool.New(context.Background(), pool.Config{Module: mod, Workers: 1, CacheDir: cacheDir(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = noTimeout.Terminate() })
	for name, tc := range map[string]struct {
		p    *pool.Pool
		opt  pool.CallOption
		want string
	}{
		"timeout above":    {p, pool.WithTimeout(2 * time.Second), "above the pool's Timeout of 1s"},
		"negative timeout": {p, pool.WithTimeout(-time.Second), "use a positive duration"},
		"no pool timeout":  {noTimeout, pool.WithTimeout(time.Second), "the pool has no Timeout"},
		"memory above":     {p, pool.WithMemoryLimit(32 << 20), "above the pool's MemoryLimit"},
		"memory too small": {p, pool.WithMemoryLimit(1000), "at least one 64 KiB page"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tc.p.Map(context.Background(), "square", [][]byte{[]byte("3")}, tc.opt)
			require.ErrorIs(t, err, pool.ErrCallOption)
			require.ErrorContains(t, err, tc.want)
			r, err := tc.p.Apply(context.Background(), "square", []byte("3"), tc.opt)
			require.ErrorIs(t, err, pool.ErrCallOption)
			require.Equal(t, pool.StatusNotRun, r.Status)
		})
	}
	r, err := p.Apply(context.Background(), "square", []byte("3"), pool.WithTimeout(500*time.Millisecond), pool.WithMemoryLimit(1<<20))
	require.NoError(t, err)
	require.Equal(t, "9", string(r.Output))
}
