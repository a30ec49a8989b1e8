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
			if gofiles, _ := filepath.Glob(filepath.Join(root, dir, "*.go")); len(gofiles) == 0 {
				// A guest in another language (C) is committed compiled,
				// beside its source; its example's test checks the two
				// agree.
				wasm, err := filepath.Glob(filepath.Join(root, dir, "*.wasm"))
				require.NoError(t, err)
				require.NotEmpty(t, wasm, "%s has neither Go files nor a compiled module", dir)
				for _, w := range wasm {
					b, err := os.ReadFile(w)
					require.NoError(t, err)
					require.Equal(t, "\x00asm", string(b[:4]), w)
				}
				return
			}
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
