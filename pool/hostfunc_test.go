package pool_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/pool"
)

// TestHostFuncs: a guest's host calls run in this process; every failure
// (an error returned, a panic, an unknown name, an input or an output over
// the cap) comes back to the guest as an error it handles, and the same
// worker goes on.
func TestHostFuncs(t *testing.T) {
	type ctxKey struct{}
	p, err := pool.New(context.Background(), pool.Config{
		Module: testguest.Path(t, "tasks"), Workers: 1, CacheDir: cacheDir(t), OutputLimit: 1 << 10,
		HostFuncs: map[string]pool.HostFunc{
			"upper": func(_ context.Context, in []byte) ([]byte, error) { return []byte(strings.ToUpper(string(in))), nil },
			"fail":  func(context.Context, []byte) ([]byte, error) { return nil, errors.New("no such user") },
			"panic": func(context.Context, []byte) ([]byte, error) { panic("host function bug") },
			"big":   func(context.Context, []byte) ([]byte, error) { return make([]byte, 2<<10), nil },
			"ctx": func(ctx context.Context, _ []byte) ([]byte, error) {
				v, _ := ctx.Value(ctxKey{}).(string)
				return []byte(v), nil
			},
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Terminate() })
	ctx := context.WithValue(context.Background(), ctxKey{}, "the caller's")
	inputs := [][]byte{
		[]byte("upper\nhello"), []byte("fail\n"), []byte("panic\n"), []byte("nope\n"),
		[]byte("big\n"), []byte("upper\n" + strings.Repeat("x", 2<<10)), []byte("ctx\n"), []byte("upper\nstill fine"),
	}
	rs, err := p.Map(ctx, "callhost", inputs)
	require.NoError(t, err)
	want := []string{
		"got:HELLO",
		"host error: host function fail: no such user",
		"host error: host function panic: panic: host function bug",
		`host error: no host function "nope"; the pool provides ["big" "ctx" "fail" "panic" "upper"]`,
		"host error: host function big: output of 2048 bytes is over the cap of 1024 bytes (OutputLimit)",
		"host error: host function upper: input of 2 KiB is over the cap of 1 KiB",
		"got:the caller's",
		"got:STILL FINE",
	}
	pid := rs[0].Stats.WorkerPID
	for i, r := range rs {
		require.Equal(t, pool.StatusOK, r.Status, "%d: %s", i, r.Error)
		require.Equal(t, want[i], string(r.Output), i)
		require.Equal(t, pid, r.Stats.WorkerPID, "the worker survives every failure")
	}
}

// TestHostFuncTimeout: a host function slower than the task's timeout,
// one that ignores its context included, ends the task as a timeout; its
// context carries the task's deadline; the pool goes on.
func TestHostFuncTimeout(t *testing.T) {
	sawDeadline := make(chan bool, 2)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	p, err := pool.New(context.Background(), pool.Config{
		Module: testguest.Path(t, "tasks"), Workers: 1, CacheDir: cacheDir(t), Timeout: 300 * time.Millisecond,
		HostFuncs: map[string]pool.HostFunc{
			"slow": func(ctx context.Context, _ []byte) ([]byte, error) {
				_, ok := ctx.Deadline()
				sawDeadline <- ok
				<-ctx.Done()
				return nil, ctx.Err()
			},
			"stubborn": func(context.Context, []byte) ([]byte, error) {
				<-release // ignores its context
				return nil, nil
			},
			"upper": func(_ context.Context, in []byte) ([]byte, error) { return []byte(strings.ToUpper(string(in))), nil },
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Terminate() })
	rs, err := p.Map(context.Background(), "callhost", [][]byte{[]byte("slow\n"), []byte("stubborn\n"), []byte("upper\nafter")})
	require.NoError(t, err)
	require.True(t, <-sawDeadline, "the host function's context has the task's deadline")
	require.Equal(t, pool.StatusTimeout, rs[0].Status, rs[0].Error)
	require.Equal(t, pool.StatusTimeout, rs[1].Status, rs[1].Error)
	require.Equal(t, pool.StatusOK, rs[2].Status, rs[2].Error)
	require.Equal(t, "got:AFTER", string(rs[2].Output))
}

// TestHostFuncsRefused: host functions a pool cannot provide are refused
// by New.
func TestHostFuncsRefused(t *testing.T) {
	for name, cfg := range map[string]pool.Config{
		"nil function": {HostFuncs: map[string]pool.HostFunc{"f": nil}},
		"empty name":   {HostFuncs: map[string]pool.HostFunc{"": func(context.Context, []byte) ([]byte, error) { return nil, nil }}},
		"cluster":      {Cluster: "embedded", HostFuncs: map[string]pool.HostFunc{"f": func(context.Context, []byte) ([]byte, error) { return nil, nil }}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.Module, cfg.Workers = testguest.Path(t, "wsquare"), 1
			_, err := pool.New(context.Background(), cfg)
			require.ErrorIs(t, err, pool.ErrConfig)
			require.ErrorContains(t, err, "HostFuncs")
		})
	}
}
