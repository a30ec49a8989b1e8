//go:build cgo

package wasmtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/module"
)

// cachePrefix starts the names of wasmtime's cache files. It names
// everything the compiled code depends on, so that binaries that differ in
// any of it keep separate files instead of deleting each other's; bump the
// last part when newEngine's settings change.
const cachePrefix = "wasmtime-v39.0.1-" + runtime.GOARCH + "-1-"

// Prepare checks the module and fills the cache entry dir, as the workers
// would.
func (Engine) Prepare(ctx context.Context, wasm []byte, dir string, _ engine.Options) (*module.Info, error) {
	info, err := module.Inspect(ctx, wasm)
	if err != nil || dir == "" {
		return info, err
	}
	eng := newEngine()
	defer eng.Close()
	mod, err := load(eng, wasm, dir)
	if err != nil {
		return nil, err
	}
	mod.Close()
	return info, nil
}

// load returns the module compiled for eng: from the cache entry dir when it
// holds a good copy, else compiled and then stored there.
//
// The entry holds one file per compiled form, named after the SHA-256 of its contents. wasmtime trusts a
// serialized module completely (loading a damaged one could crash the
// worker or worse), so each file is checked against its name before
// wasmtime sees it, and a file that fails the check, or that wasmtime
// refuses, is deleted and the module compiled again. Files are written
// under a temporary name and renamed into place, so that workers sharing
// the directory never see half a file.
func load(eng *wasmtime.Engine, wasm []byte, dir string) (*wasmtime.Module, error) {
	if dir == "" {
		return compile(eng, wasm)
	}
	entries, _ := os.ReadDir(dir)
	for _, ent := range entries {
		name := ent.Name()
		if !strings.HasPrefix(name, cachePrefix) || !strings.HasSuffix(name, ".cwasm") {
			continue
		}
		path := filepath.Join(dir, name)
		if mod, err := loadChecked(eng, path, name); err == nil {
			return mod, nil
		}
		_ = os.Remove(path)
	}
	mod, err := compile(eng, wasm)
	if err != nil {
		return nil, err
	}
	// The cache is an optimisation: failing to fill it is not an error.
	if b, err := mod.Serialize(); err == nil {
		_ = writeCacheFile(dir, b)
	}
	return mod, nil
}

func compile(eng *wasmtime.Engine, wasm []byte) (*wasmtime.Module, error) {
	mod, err := wasmtime.NewModule(eng, wasm)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", module.ErrInvalidModule, err)
	}
	return mod, nil
}

func cacheFileName(b []byte) string {
	sum := sha256.Sum256(b)
	return cachePrefix + hex.EncodeToString(sum[:16]) + ".cwasm"
}

func loadChecked(eng *wasmtime.Engine, path, name string) (*wasmtime.Module, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if cacheFileName(b) != name {
		return nil, fmt.Errorf("wasmtime: cache file %s is damaged", path)
	}
	// Renames never change a file's contents, so the file wasmtime maps is
	// the one just checked.
	return wasmtime.NewModuleDeserializeFile(eng, path)
}

func writeCacheFile(dir string, b []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".wasmtime-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, cacheFileName(b)))
}
