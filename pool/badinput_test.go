package pool_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/pool"
)

// TestMalformedModules: every module of the malformed corpus is refused by
// New, at once, with an error that says what is wrong, and New leaves no
// worker, descriptor or temporary file behind.
func TestMalformedModules(t *testing.T) {
	before := children(t)
	fds := openFDs(t)
	moduleDirs := func() []string {
		m, err := filepath.Glob(filepath.Join(os.TempDir(), "safepool-module-*"))
		require.NoError(t, err)
		return m
	}
	tmp := moduleDirs()
	for _, bad := range testguest.Malformed(t) {
		t.Run(bad.Name, func(t *testing.T) {
			p, err := pool.New(context.Background(), pool.Config{ModuleBytes: append([]byte{}, bad.Wasm...), Workers: 2, CacheDir: cacheDir(t)})
			require.Nil(t, p)
			require.Error(t, err)
			if bad.Is != nil {
				require.ErrorIs(t, err, bad.Is)
			}
			require.ErrorContains(t, err, bad.Want)
			require.ErrorContains(t, err, "pool: module (bytes)")
		})
	}
	require.ElementsMatch(t, before, children(t))
	require.Equal(t, fds, openFDs(t))
	require.ElementsMatch(t, tmp, moduleDirs(), "New left the module's temporary copy behind")
}
