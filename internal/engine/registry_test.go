package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/module"
)

// fake is an engine that records the cache entries it is given.
type fake struct{ dirs *[]string }

func (f fake) Prepare(_ context.Context, _ []byte, dir string, _ engine.Options) (*module.Info, error) {
	*f.dirs = append(*f.dirs, dir)
	return &module.Info{Kind: module.KindCommand}, nil
}

func (f fake) Load(context.Context, []byte, string, engine.Options) (engine.Compiled, *module.Info, error) {
	return nil, nil, nil
}

func (fake) Reservation() uint64 { return 1 << 30 }

var fakeDirs []string

func init() { engine.Register("fake", fake{&fakeDirs}) }

func TestRegistry(t *testing.T) {
	require.Equal(t, []string{engine.Wazero, "fake"}, engine.Names(), "the default first")
	for _, name := range []string{"", engine.Wazero, "fake"} {
		require.NoError(t, engine.Check(name), name)
	}
	e, err := engine.Lookup("fake")
	require.NoError(t, err)
	require.Equal(t, uint64(1<<30), e.Reservation())

	err = engine.Check("v8")
	require.ErrorIs(t, err, engine.ErrUnknown)
	require.EqualError(t, err, `engine: unknown engine "v8"; use wazero, fake or wasmtime`)

	// wasmtime is known but not in this binary: the error says how to get it.
	err = engine.Check(engine.Wasmtime)
	require.ErrorIs(t, err, engine.ErrUnavailable)
	require.EqualError(t, err, `engine: wasmtime is not built into this binary; `+
		`add import _ "github.com/safepool/safepool/engine/wasmtime" to the program, and build it with cgo (CGO_ENABLED=1 and a C compiler)`)
	_, err = engine.Prepare(context.Background(), engine.Wasmtime, []byte("\x00asm"), t.TempDir(), engine.Options{})
	require.ErrorIs(t, err, engine.ErrUnavailable)

	require.Panics(t, func() { engine.Register("fake", fake{&fakeDirs}) }, "a name is registered once")
	require.Panics(t, func() { engine.Register("nil", nil) })
}

// TestCacheLayout: each engine has a directory of its own under the root,
// and each module one under that; Forget removes one engine's entry only.
func TestCacheLayout(t *testing.T) {
	root := t.TempDir()
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	dir := engine.Dir(root, "fake", wasm, engine.Options{})
	require.Equal(t, filepath.Join(root, "fake"), filepath.Dir(dir))
	require.Len(t, filepath.Base(dir), 24, "12 bytes of the module's SHA-256, in hex")
	require.Equal(t, filepath.Join(root, engine.Wazero, filepath.Base(dir)), engine.Dir(root, "", wasm, engine.Options{}), `"" is wazero`)
	require.Empty(t, engine.Dir("", "fake", wasm, engine.Options{}), "no cache, no entry")

	fakeDirs = nil
	_, err := engine.Prepare(context.Background(), "fake", wasm, root, engine.Options{})
	require.NoError(t, err)
	require.Equal(t, []string{dir}, fakeDirs, "the engine is given its entry")
	require.True(t, engine.Prepared("fake", wasm, root, engine.Options{}))
	require.False(t, engine.Prepared(engine.Wazero, wasm, root, engine.Options{}), "prepared for one engine only")

	other := engine.Dir(root, engine.Wazero, wasm, engine.Options{})
	require.NoError(t, os.MkdirAll(other, 0o755))
	require.NoError(t, engine.Forget("fake", wasm, root, engine.Options{}))
	require.False(t, engine.Prepared("fake", wasm, root, engine.Options{}))
	require.NoDirExists(t, dir)
	require.DirExists(t, other, "another engine's entry stays")
	require.NoError(t, engine.Forget("fake", wasm, "", engine.Options{}), "no cache: nothing to forget")

	fakeDirs = nil
	_, err = engine.Prepare(context.Background(), "fake", wasm, "", engine.Options{})
	require.NoError(t, err)
	require.Equal(t, []string{""}, fakeDirs, "no cache: the engine only checks")
}

func TestDefaultCacheDir(t *testing.T) {
	d := engine.DefaultCacheDir()
	require.True(t, strings.HasSuffix(d, "safepool") || strings.HasSuffix(d, "safepool-cache"), d)
	require.NotContains(t, d, engine.Wazero, "the root serves every engine")
}
