package guestbuild_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/guestbuild"
)

// TestBuildGuests builds every example's guest modules into the cache
// (`make guests` runs it) and checks that each is WebAssembly.
func TestBuildGuests(t *testing.T) {
	root := filepath.Join("..", "..")
	var dirs []string
	for _, pattern := range []string{"examples/*/guest", "examples/*/guests/*"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		require.NoError(t, err)
		for _, d := range m {
			rel, err := filepath.Rel(root, d)
			require.NoError(t, err)
			dirs = append(dirs, filepath.ToSlash(rel))
		}
	}
	require.NotEmpty(t, dirs)
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			path, err := guestbuild.Build(dir)
			require.NoError(t, err)
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, "\x00asm", string(b[:4]))

			again, err := guestbuild.Build(dir)
			require.NoError(t, err)
			require.Equal(t, path, again, "a second build comes from the cache")
		})
	}
}

func TestBuildFailsClearly(t *testing.T) {
	_, err := guestbuild.Build("examples/no-such-example/guest")
	require.ErrorContains(t, err, "no Go files in")
}
