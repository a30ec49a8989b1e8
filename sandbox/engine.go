package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// maxPages is wazero's own page limit. The real cap is enforced per instance
// by memCap; this only has to be above every cap a task may ask for (4 GiB,
// the most a 32-bit memory can address).
const maxPages = 65536

// runtimeConfig must be the same in the host's Precompile and in every
// worker: the settings are part of the compilation cache's key.
func runtimeConfig(cache wazero.CompilationCache) wazero.RuntimeConfig {
	c := wazero.NewRuntimeConfigCompiler().
		// Compiles loop-header checks, so that closing the module from the
		// watchdog stops even a tight infinite loop.
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(maxPages)
	if cache != nil {
		c = c.WithCompilationCache(cache)
	}
	return c
}

// cacheDirFor returns the cache directory of one module. Each module gets its
// own directory, so that a damaged entry can be removed without knowing
// wazero's internal file names.
func cacheDirFor(root string, wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return filepath.Join(root, hex.EncodeToString(sum[:12]))
}

// DefaultCacheDir returns the compilation cache directory used when a pool is
// not given one: the user's cache directory, or the temporary directory.
func DefaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "safepool", "wazero")
	}
	return filepath.Join(os.TempDir(), "safepool-cache", "wazero")
}

// Precompile compiles wasm into the compilation cache under cacheDir, so
// that workers started afterwards load machine code instead of compiling. It
// is cheap when the cache already holds the module. A damaged cache entry is
// removed and compiled again.
func Precompile(ctx context.Context, wasm []byte, cacheDir string) error {
	rt, cm, err := compile(ctx, wasm, cacheDir)
	if err != nil {
		return err
	}
	cm.Close(ctx)
	return rt.Close(ctx)
}

// compile makes a runtime and compiles wasm in it, through the cache when
// cacheDir is set. wazero checks only part of a cache file (its checksum does
// not cover the offset table), so a damaged file can fail or even panic here;
// either way the module's cache directory is removed and the module compiled
// once more.
func compile(ctx context.Context, wasm []byte, cacheDir string) (wazero.Runtime, wazero.CompiledModule, error) {
	rt, cm, err := compileOnce(ctx, wasm, cacheDir)
	if err == nil || cacheDir == "" {
		return rt, cm, err
	}
	// Any failure with a cache may be the cache's fault: a real problem with
	// the module fails again below, without the cache entry.
	_ = os.RemoveAll(cacheDirFor(cacheDir, wasm))
	return compileOnce(ctx, wasm, cacheDir)
}

func compileOnce(ctx context.Context, wasm []byte, cacheDir string) (rt wazero.Runtime, cm wazero.CompiledModule, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sandbox: compilation cache is damaged: %v", r)
			if rt != nil {
				rt.Close(ctx)
			}
			rt, cm = nil, nil
		}
	}()
	var cache wazero.CompilationCache
	if cacheDir != "" {
		cache, err = wazero.NewCompilationCacheWithDir(cacheDirFor(cacheDir, wasm))
		if err != nil {
			return nil, nil, fmt.Errorf("sandbox: open compilation cache: %w", err)
		}
	}
	rt = wazero.NewRuntimeWithConfig(ctx, runtimeConfig(cache))
	cm, err = rt.CompileModule(ctx, wasm)
	if err != nil {
		rt.Close(ctx)
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	return rt, cm, nil
}

// engine is the worker's wazero runtime with the module compiled in it.
type engine struct {
	rt   wazero.Runtime
	cm   wazero.CompiledModule
	info *ModuleInfo
	base wazero.ModuleConfig

	// cur is the instance whose call is running; the safepool.result host
	// function reports to it. Only the worker's main goroutine sets it.
	cur *instance
}

func newEngine(ctx context.Context, wasm []byte, cacheDir string) (*engine, error) {
	rt, cm, err := compile(ctx, wasm, cacheDir)
	if err != nil {
		return nil, err
	}
	info, err := inspectCompiled(cm)
	if err != nil {
		rt.Close(ctx)
		return nil, err
	}
	e := &engine{rt: rt, cm: cm, info: info}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("sandbox: instantiate WASI: %w", err)
	}
	_, err = rt.NewHostModuleBuilder("safepool").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(e.hostResult), []api.ValueType{i32, i32, i32}, nil).
		Export("result").
		Instantiate(ctx)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("sandbox: instantiate the safepool host module: %w", err)
	}
	// Deny by default: no args, no env, no preopens, no sockets. Clocks are
	// real, so that timing code behaves; sleeps are made interruptible per
	// instance.
	e.base = wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(randReader{})
	return e, nil
}

func (e *engine) hostResult(ctx context.Context, m api.Module, stack []uint64) {
	status, ptr, n := uint32(stack[0]), uint32(stack[1]), uint32(stack[2])
	inst := e.cur
	if inst == nil {
		panic("safepool.result called outside a task")
	}
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		panic(fmt.Sprintf("safepool.result: bytes [%d, %d) are outside linear memory", ptr, uint64(ptr)+uint64(n)))
	}
	inst.onResult(status, b)
}

func (e *engine) close(ctx context.Context) {
	e.rt.Close(ctx)
}
