package pool_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/pool"
)

// TestGrants: a pool's Env, Args and Dirs reach its guests through real
// workers, and only they do.
func TestGrants(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello"), 0o644))
	p, err := pool.New(context.Background(), pool.Config{
		Module: testguest.Path(t, "tasks"), Workers: 1, CacheDir: cacheDir(t),
		Env: map[string]string{"B": "2", "A": "1"}, Args: []string{"x"},
		Dirs: []pool.Dir{{HostPath: dir, GuestPath: "/data/"}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Terminate() })
	r, err := p.Apply(context.Background(), "env", nil)
	require.NoError(t, err)
	require.Equal(t, pool.StatusOK, r.Status, r.Error)
	var got struct{ Env, Args []string }
	require.NoError(t, json.Unmarshal(r.Output, &got))
	require.Equal(t, []string{"A=1", "B=2"}, got.Env)
	require.Equal(t, []string{"tasks.wasm", "x"}, got.Args)
	r, err = p.Apply(context.Background(), "readfile", []byte("/data/hello.txt"))
	require.NoError(t, err)
	require.Contains(t, string(r.Output), `"content":"hello"`)
}

// TestGrantsRefused: a grant that cannot be honoured is refused by New
// with ErrConfig and a message that says what to do.
func TestGrantsRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	mod := testguest.Path(t, "wsquare")
	for name, tc := range map[string]struct {
		cfg  pool.Config
		want string
	}{
		"empty env name":   {pool.Config{Env: map[string]string{"": "x"}}, "Env has an empty name"},
		"= in env name":    {pool.Config{Env: map[string]string{"A=B": "x"}}, "contains '='"},
		"NUL in value":     {pool.Config{Env: map[string]string{"A": "\x00"}}, "NUL byte"},
		"NUL in arg":       {pool.Config{Args: []string{"\x00"}}, "Args[0] contains a NUL byte"},
		"no host path":     {pool.Config{Dirs: []pool.Dir{{GuestPath: "/d"}}}, "has no HostPath"},
		"relative guest":   {pool.Config{Dirs: []pool.Dir{{HostPath: "/", GuestPath: "d"}}}, "is not absolute"},
		"missing host dir": {pool.Config{Dirs: []pool.Dir{{HostPath: "/nonexistent-dir", GuestPath: "/d"}}}, "grant a directory that exists"},
		"file, not dir":    {pool.Config{Dirs: []pool.Dir{{HostPath: file, GuestPath: "/d"}}}, "is not a directory"},
		"twice":            {pool.Config{Dirs: []pool.Dir{{HostPath: "/", GuestPath: "/d"}, {HostPath: "/tmp", GuestPath: "/d/"}}}, "grants /d twice"},
	} {
		t.Run(name, func(t *testing.T) {
			tc.cfg.Module, tc.cfg.Workers = mod, 1
			_, err := pool.New(context.Background(), tc.cfg)
			require.ErrorIs(t, err, pool.ErrConfig)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
