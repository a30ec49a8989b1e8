package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/safepool/safepool/module"
)

// maxPages is wazero's own page limit. The real cap is enforced per instance
// by memCap; this only has to be above every cap a task may ask for (4 GiB,
// the most a 32-bit memory can address).
const maxPages = 65536

// runtimeConfig must be the same in the host's Precompile and in every
// worker: the settings are part of the compilation cache's key.
func runtimeConfig(cache wazero.CompilationCache) wazero.RuntimeConfig {
	c := wazero.NewRuntimeConfigCompiler().
		// Compiles loop-header checks, so that cancelling the call's
		// context from the watchdog stops even a tight infinite loop.
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(maxPages)
	if cache != nil {
		c = c.WithCompilationCache(cache)
	}
	return c
}

// prepareWazero checks the module as module.Inspect does and compiles it
// into the cache under cacheDir. With a cache the compilation is the
// validation, which spares decoding the module a second time in the
// interpreter (a third of a second for a 4 MB Go module).
func prepareWazero(ctx context.Context, wasm []byte, cacheDir string) (*module.Info, error) {
	if cacheDir == "" {
		return module.Inspect(ctx, wasm) // nothing to fill: a compile would be thrown away
	}
	var rt wazero.Runtime
	info, err := module.InspectWith(wasm, func() (err error) {
		rt, _, err = compileWazero(ctx, wasm, cacheDir)
		return err
	})
	if rt != nil {
		rt.Close(ctx)
	}
	return info, err
}

// compileWazero makes a runtime and compiles wasm in it, through the cache
// when cacheDir is set. wazero checks only part of a cache file (its
// checksum does not cover the offset table), so a damaged file can fail or
// even panic here; either way the module's cache directory is removed and
// the module compiled once more.
func compileWazero(ctx context.Context, wasm []byte, cacheDir string) (wazero.Runtime, wazero.CompiledModule, error) {
	rt, cm, err := compileWazeroOnce(ctx, wasm, cacheDir)
	if err == nil || cacheDir == "" {
		return rt, cm, err
	}
	// Any failure with a cache may be the cache's fault: a real problem with
	// the module fails again below, without the cache entry.
	_ = os.RemoveAll(cacheDirFor(cacheDir, wasm))
	return compileWazeroOnce(ctx, wasm, cacheDir)
}

func compileWazeroOnce(ctx context.Context, wasm []byte, cacheDir string) (rt wazero.Runtime, cm wazero.CompiledModule, err error) {
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
		return nil, nil, fmt.Errorf("%w: %v", module.ErrInvalidModule, err)
	}
	return rt, cm, nil
}

// wazeroEngine is the worker's wazero runtime with the module compiled in it.
type wazeroEngine struct {
	rt   wazero.Runtime
	cm   wazero.CompiledModule
	base wazero.ModuleConfig

	// cur is the guest whose call is running; the safepool.result host
	// function reports to it. Only the worker's main goroutine sets it.
	cur *wazeroGuest
}

func newWazero(ctx context.Context, wasm []byte, cacheDir string) (engine, *module.Info, error) {
	var rt wazero.Runtime
	var cm wazero.CompiledModule
	info, err := module.InspectWith(wasm, func() (err error) {
		rt, cm, err = compileWazero(ctx, wasm, cacheDir)
		return err
	})
	if err != nil {
		if rt != nil {
			rt.Close(ctx)
		}
		return nil, nil, err
	}
	e := &wazeroEngine{rt: rt, cm: cm}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, nil, fmt.Errorf("sandbox: instantiate WASI: %w", err)
	}
	_, err = rt.NewHostModuleBuilder("safepool").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(e.hostResult), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).
		Export("result").
		Instantiate(ctx)
	if err != nil {
		rt.Close(ctx)
		return nil, nil, fmt.Errorf("sandbox: instantiate the safepool host module: %w", err)
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
	return e, info, nil
}

func (e *wazeroEngine) hostResult(ctx context.Context, m api.Module, stack []uint64) {
	status, ptr, n := uint32(stack[0]), uint32(stack[1]), uint32(stack[2])
	g := e.cur
	if g == nil {
		panic("safepool.result called outside a task")
	}
	var b []byte
	if n > 0 { // with no bytes, ptr may be anything (guest/ABI.md)
		var ok bool
		if b, ok = m.Memory().Read(ptr, n); !ok {
			panic(fmt.Sprintf("safepool.result: bytes [%d, %d) are outside linear memory", ptr, uint64(ptr)+uint64(n)))
		}
	}
	g.inst.onResult(status, b)
}

func (e *wazeroEngine) close() { e.rt.Close(context.Background()) }

// wazeroGuest is one wazero instance with its memory cap.
type wazeroGuest struct {
	e    *wazeroEngine
	inst *instance
	mod  api.Module
	mem  api.Memory
	cap  *memCap
	fns  [numExports]api.Function

	cancel atomic.Pointer[context.CancelFunc] // cancels the running call
}

func (e *wazeroEngine) instantiate(ctx context.Context, inst *instance) (_ guest, err error) {
	g := &wazeroGuest{e: e, inst: inst, cap: &memCap{limit: inst.limit}}
	cfg := e.base.WithStderr(inst.log).WithNanosleep(func(ns int64) { inst.sleep(ns) })
	if inst.stdout != nil {
		cfg = cfg.WithStdout(inst.stdout).WithStdin(bytes.NewReader(inst.stdin))
	} else {
		cfg = cfg.WithStdout(inst.log)
	}
	defer func() {
		// wazero does not expect an allocator to refuse a memory's initial
		// size, and panics slicing the nil it gets back. Any other panic
		// goes on: a worker that dies while starting tells the pool that
		// its compilation cache may be damaged (see ForgetCompiled).
		if g.cap.hit.Load() {
			if r := recover(); r != nil {
				err = errMemoryAtStart{inst.limit}
			}
		}
	}()
	mod, err := e.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, g.cap), e.cm, cfg)
	if err != nil {
		if g.cap.hit.Load() {
			return nil, errMemoryAtStart{inst.limit}
		}
		return nil, &instantiateError{wazeroError(err)}
	}
	g.mod = mod
	g.mem = mod.Memory()
	for f := range numExports {
		g.fns[f] = mod.ExportedFunction(exportNames[f])
	}
	return g, nil
}

func (g *wazeroGuest) has(fn export) bool { return g.fns[fn] != nil }

func (g *wazeroGuest) call(ctx context.Context, fn export, args ...uint32) (uint32, error) {
	f := g.fns[fn]
	if f == nil {
		return 0, fmt.Errorf("the module does not export %s", fn)
	}
	var params [4]uint64
	for i, a := range args {
		params[i] = uint64(a)
	}
	cctx, cancel := context.WithCancel(ctx)
	g.cancel.Store(&cancel)
	if g.inst.timedOut.Load() {
		cancel() // the watchdog fired before this call could be stopped
	}
	g.e.cur = g
	res, err := f.Call(cctx, params[:len(args)]...)
	g.e.cur = nil
	g.cancel.Store(nil)
	cancel()
	if err != nil {
		return 0, wazeroError(err)
	}
	if len(res) == 0 {
		return 0, nil
	}
	return uint32(res[0]), nil
}

// wazeroError turns a failed call into an exitError or a trapError.
// wazero's text is already the trap's line ("wasm error: unreachable"), or a
// host function's panic ending in " (recovered by wazero)", then the stack.
func wazeroError(err error) error {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return &exitError{exit.ExitCode()}
	}
	msg, trace, _ := strings.Cut(err.Error(), "\n")
	msg = strings.TrimSuffix(msg, " (recovered by wazero)")
	if msg == "stack overflow" {
		// wazero's compiler returns this one trap bare, without its prefix
		// or a stack, to avoid unwinding a full stack (v1.12).
		msg = "wasm error: stack overflow"
	}
	// Keep the innermost frames, not all of them.
	if lines := strings.Split(trace, "\n"); len(lines) > maxTraceFrames+1 {
		trace = strings.Join(lines[:maxTraceFrames+1], "\n") + "\n\t..."
	}
	return &trapError{msg: msg, trace: trace}
}

// interrupt cancels the running call's context. wazero then marks the
// module closed without freeing its memory; the compiled code checks that
// mark at every loop header and function entry, so the guest stops wherever
// it is. (Module.CloseWithExitCode would free the linear memory under the
// running guest.)
func (g *wazeroGuest) interrupt() {
	if c := g.cancel.Load(); c != nil {
		(*c)()
	}
}

func (g *wazeroGuest) memory(ptr, n uint32) ([]byte, bool) {
	if g.mem == nil {
		return nil, false
	}
	return g.mem.Read(ptr, n)
}

func (g *wazeroGuest) capHit() bool       { return g.cap.hit.Load() }
func (g *wazeroGuest) clearCapHit()       { g.cap.hit.Store(false) }
func (g *wazeroGuest) peakMemory() uint64 { return g.cap.peak.Load() }

func (g *wazeroGuest) close() {
	if g.mod != nil {
		_ = g.mod.Close(context.Background())
	}
}
