package harness

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// wasmHost runs a guest in this process, through the same guest ABI as a
// safepool worker (guest/ABI.md) and with the same runtime settings, but
// with none of the worker's policy: no memory cap allocator, no watchdog,
// no per-task bookkeeping, no pipe. It is what a worker could do at best.
//
// Like a worker, each wasmHost has its own runtime and one instance, and is
// used by one goroutine at a time.
type wasmHost struct {
	ctx                context.Context
	rt                 wazero.Runtime
	mem                api.Memory
	alloc, call, batch api.Function
	stack              []uint64
	records            []byte

	// sink receives safepool.result calls while a call runs.
	sink func(status uint32, b []byte)
}

// inProcessCache is the compilation cache of in-process runtimes, shared by
// every runtime of the process and kept on disk between runs.
func inProcessCache(dir string) wazero.CompilationCache {
	if dir != "" {
		if c, err := wazero.NewCompilationCacheWithDir(filepath.Join(dir, "inprocess")); err == nil {
			return c
		}
	}
	return wazero.NewCompilationCache()
}

func newWasmHost(ctx context.Context, wasm []byte, cache wazero.CompilationCache) (*wasmHost, error) {
	// The settings of the wazero engine's runtimeConfig for a pool without
	// a Timeout, as the harness's pools are: the compiler, no loop-header
	// checks (engine.Options.NoInterrupt), and wazero's own page limit at
	// 4 GiB.
	cfg := wazero.NewRuntimeConfigCompiler().
		WithCloseOnContextDone(false).
		WithMemoryLimitPages(65536).
		WithCompilationCache(cache)
	h := &wasmHost{ctx: ctx, rt: wazero.NewRuntimeWithConfig(ctx, cfg), stack: make([]uint64, 4)}
	fail := func(what string, err error) (*wasmHost, error) {
		h.rt.Close(ctx)
		return nil, fmt.Errorf("harness: in-process wazero: %s: %w", what, err)
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, h.rt); err != nil {
		return fail("WASI", err)
	}
	_, err := h.rt.NewHostModuleBuilder("safepool").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, m api.Module, stack []uint64) {
			status, ptr, n := api.DecodeU32(stack[0]), api.DecodeU32(stack[1]), api.DecodeU32(stack[2])
			b, ok := m.Memory().Read(ptr, n)
			if !ok {
				panic("safepool.result: bytes outside linear memory")
			}
			h.sink(status, b)
		}), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).
		Export("result").
		// The SDK imports the host-function calls; the benchmark's guests
		// never make one.
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {
			panic("safepool.host_call: no host functions in the in-process benchmark")
		}), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
		Export("host_call").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {
			panic("safepool.host_take: no host functions in the in-process benchmark")
		}), []api.ValueType{api.ValueTypeI32}, nil).
		Export("host_take").
		Instantiate(ctx)
	if err != nil {
		return fail("host module", err)
	}
	cm, err := h.rt.CompileModule(ctx, wasm)
	if err != nil {
		return fail("compile", err)
	}
	mod, err := h.rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithSysWalltime().
		WithSysNanotime().
		WithStderr(os.Stderr))
	if err != nil {
		return fail("instantiate", err)
	}
	if init := mod.ExportedFunction("_initialize"); init != nil {
		if _, err := init.Call(ctx); err != nil {
			return fail("_initialize", err)
		}
	}
	h.mem = mod.Memory()
	h.alloc = mod.ExportedFunction("safepool_alloc")
	h.call = mod.ExportedFunction("safepool_call")
	h.batch = mod.ExportedFunction("safepool_batch")
	if h.alloc == nil || h.call == nil || h.batch == nil {
		return fail("exports", fmt.Errorf("the module lacks safepool_alloc, safepool_call or safepool_batch"))
	}
	return h, nil
}

func (h *wasmHost) close() { h.rt.Close(h.ctx) }

// put copies b into guest memory from safepool_alloc.
func (h *wasmHost) put(b []byte) (uint32, error) {
	h.stack[0] = uint64(len(b))
	if err := h.alloc.CallWithStack(h.ctx, h.stack); err != nil {
		return 0, err
	}
	ptr := api.DecodeU32(h.stack[0])
	if ptr == 0 && len(b) > 0 {
		return 0, fmt.Errorf("safepool_alloc(%d) failed", len(b))
	}
	if !h.mem.Write(ptr, b) {
		return 0, fmt.Errorf("safepool_alloc returned %d, outside linear memory", ptr)
	}
	return ptr, nil
}

// runBatch runs fn on every input through one safepool_batch call and
// stores a copy of each output in out, which has one slot per input.
func (h *wasmHost) runBatch(fn string, inputs, out [][]byte) error {
	h.records = h.records[:0]
	for _, in := range inputs {
		h.records = binary.LittleEndian.AppendUint32(h.records, uint32(len(fn)))
		h.records = append(h.records, fn...)
		h.records = binary.LittleEndian.AppendUint32(h.records, uint32(len(in)))
		h.records = append(h.records, in...)
	}
	ptr, err := h.put(h.records)
	if err != nil {
		return err
	}
	i := 0
	var bad error
	h.sink = func(status uint32, b []byte) {
		if status != 0 && bad == nil {
			bad = fmt.Errorf("task %d: status %d: %s", i, status, b)
		}
		if i < len(out) {
			out[i] = append([]byte(nil), b...)
		}
		i++
	}
	h.stack[0], h.stack[1] = uint64(ptr), uint64(len(h.records))
	if err := h.batch.CallWithStack(h.ctx, h.stack); err != nil {
		return err
	}
	if bad != nil {
		return bad
	}
	if i != len(inputs) {
		return fmt.Errorf("safepool_batch reported %d results for %d tasks", i, len(inputs))
	}
	return nil
}

// callOne runs one task through safepool_call, name and input in one
// block, and returns a copy of its output.
func (h *wasmHost) callOne(fn string, in []byte) ([]byte, error) {
	h.records = append(append(h.records[:0], fn...), in...)
	ptr, err := h.put(h.records)
	if err != nil {
		return nil, err
	}
	var out []byte
	var bad error
	got := 0
	h.sink = func(status uint32, b []byte) {
		got++
		if status != 0 {
			bad = fmt.Errorf("status %d: %s", status, b)
		}
		out = append([]byte(nil), b...)
	}
	h.stack[0], h.stack[1], h.stack[2], h.stack[3] = uint64(ptr), uint64(len(fn)), uint64(ptr)+uint64(len(fn)), uint64(len(in))
	if err := h.call.CallWithStack(h.ctx, h.stack); err != nil {
		return nil, err
	}
	if got != 1 {
		return nil, fmt.Errorf("safepool_call reported %d results", got)
	}
	return out, bad
}
