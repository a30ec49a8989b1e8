// Package wazero is safepool's default engine, wazero: pure Go, no cgo.
// Importing it registers it as engine.Wazero; package sandbox does, so
// every binary that runs workers has it.
package wazero

import (
	"context"
	"fmt"
	"os"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/module"
)

func init() { engine.Register(engine.Wazero, Engine{}) }

// Engine is wazero as an engine.Engine.
type Engine struct{}

// maxPages is wazero's own page limit. The real cap is enforced per instance
// by memCap; this only has to be above every cap a task may ask for (4 GiB,
// the most a 32-bit memory can address).
const maxPages = 65536

// runtimeConfig must be the same in the host's Prepare and in every
// worker: the settings are part of the compilation cache's key.
func runtimeConfig(cache wazero.CompilationCache, opts engine.Options) wazero.RuntimeConfig {
	c := wazero.NewRuntimeConfigCompiler().
		// Compiles loop-header checks, so that cancelling the call's
		// context from the watchdog stops even a tight infinite loop.
		// They cost a call back into Go at every loop back-edge, so they
		// are left out when nothing needs them (engine.Options).
		WithCloseOnContextDone(!opts.NoInterrupt).
		WithMemoryLimitPages(maxPages)
	if cache != nil {
		c = c.WithCompilationCache(cache)
	}
	return c
}

// Prepare checks the module as module.Inspect does and compiles it into
// the cache entry dir. With a cache the compilation is the validation,
// which spares decoding the module a second time in the interpreter (a
// third of a second for a 4 MB Go module).
func (Engine) Prepare(ctx context.Context, wasm []byte, dir string, opts engine.Options) (*module.Info, error) {
	if dir == "" {
		return module.Inspect(ctx, wasm) // nothing to fill: a compile would be thrown away
	}
	var rt wazero.Runtime
	info, err := module.InspectWith(wasm, func() (err error) {
		bin, _, _ := resettable(wasm, opts)
		rt, _, err = compile(ctx, bin, dir, opts)
		return err
	})
	if rt != nil {
		rt.Close(ctx)
	}
	return info, err
}

// Reservation is zero: wazero's memories are the allocator's reservation of
// the cap, which the host counts.
func (Engine) Reservation() uint64 { return 0 }

// Load compiles the module, through the cache entry dir when it is set, and
// makes the runtime its instances share: WASI and the safepool host module.
func (Engine) Load(ctx context.Context, wasm []byte, dir string, opts engine.Options) (engine.Compiled, *module.Info, error) {
	var rt wazero.Runtime
	var cm wazero.CompiledModule
	bin, globals, canReset := resettable(wasm, opts)
	info, err := module.InspectWith(wasm, func() (err error) {
		rt, cm, err = compile(ctx, bin, dir, opts)
		return err
	})
	if err != nil {
		if rt != nil {
			rt.Close(ctx)
		}
		return nil, nil, err
	}
	c := &compiled{rt: rt, cm: cm, interruptible: !opts.NoInterrupt, resettable: canReset, globals: globals}
	wctx := ctx
	if canReset {
		wctx = experimental.WithFunctionListenerFactory(ctx, experimental.FunctionListenerFactoryFunc(c.wasiListener))
	}
	if _, err := wasi_snapshot_preview1.Instantiate(wctx, rt); err != nil {
		rt.Close(ctx)
		return nil, nil, fmt.Errorf("wazero: instantiate WASI: %w", err)
	}
	_, err = rt.NewHostModuleBuilder("safepool").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(c.hostResult), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).
		Export("result").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(c.hostCall), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
		Export("host_call").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(c.hostTake), []api.ValueType{api.ValueTypeI32}, nil).
		Export("host_take").
		Instantiate(ctx)
	if err != nil {
		rt.Close(ctx)
		return nil, nil, fmt.Errorf("wazero: instantiate the safepool host module: %w", err)
	}
	// Deny by default: no args, no env, no preopens, no sockets. Clocks are
	// real, so that timing code behaves; sleeps are made interruptible per
	// instance.
	c.base = wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(randReader{})
	return c, info, nil
}

// compile makes a runtime and compiles wasm in it, through the cache entry
// dir when it is set. wazero checks only part of a cache file (its checksum
// does not cover the offset table), so a damaged file can fail or even
// panic here; either way the entry is removed and the module compiled once
// more.
func compile(ctx context.Context, wasm []byte, dir string, opts engine.Options) (wazero.Runtime, wazero.CompiledModule, error) {
	rt, cm, err := compileOnce(ctx, wasm, dir, opts)
	if err == nil || dir == "" {
		return rt, cm, err
	}
	// Any failure with a cache may be the cache's fault: a real problem with
	// the module fails again below, without the cache entry.
	_ = os.RemoveAll(dir)
	return compileOnce(ctx, wasm, dir, opts)
}

func compileOnce(ctx context.Context, wasm []byte, dir string, opts engine.Options) (rt wazero.Runtime, cm wazero.CompiledModule, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("wazero: compilation cache is damaged: %v", r)
			if rt != nil {
				rt.Close(ctx)
			}
			rt, cm = nil, nil
		}
	}()
	var cache wazero.CompilationCache
	if dir != "" {
		cache, err = wazero.NewCompilationCacheWithDir(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("wazero: open compilation cache: %w", err)
		}
	}
	rt = wazero.NewRuntimeWithConfig(ctx, runtimeConfig(cache, opts))
	cm, err = rt.CompileModule(ctx, wasm)
	if err != nil {
		rt.Close(ctx)
		return nil, nil, fmt.Errorf("%w: %v", module.ErrInvalidModule, err)
	}
	return rt, cm, nil
}
