package testguest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/safepool/safepool/internal/testguest"
)

// This file is a minimal in-process host for guest ABI v1: enough to prove
// that the fixtures implement the contract, with none of the worker's policy.

// outcome is one safepool.result call, copied out of guest memory.
type outcome struct {
	Status uint32
	Data   string
}

// Status codes of safepool.result.
const (
	statusOK      = 0
	statusError   = 1
	statusUnknown = 2
)

func ok(data string) outcome     { return outcome{statusOK, data} }
func failed(msg string) outcome  { return outcome{statusError, msg} }
func unknown(msg string) outcome { return outcome{statusUnknown, msg} }

// hostOptions configures one runtime and the module instance in it.
type hostOptions struct {
	memoryPages uint32 // cap on linear memory in 64 KiB pages; 0 for wazero's default
	closeOnDone bool   // stop guest code when the call's context is done
	fakeClock   bool   // keep wazero's default fake clocks and no-op sleep
	stdin       []byte
}

// instance is one loaded fixture with its own runtime.
type instance struct {
	t       testing.TB
	ctx     context.Context
	mod     api.Module
	got     []outcome
	stdout  bytes.Buffer
	stderr  bytes.Buffer
	initErr error // from instantiation, which runs _start for commands
	fns     map[string]api.Function
}

// compilationCache is shared by every runtime in this test binary and, on
// disk, by later runs, so each fixture is compiled by wazero once.
var compilationCache = sync.OnceValue(func() wazero.CompilationCache {
	dir := filepath.Join(os.TempDir(), "safepool-testguest", "wazero-cache")
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return wazero.NewCompilationCache()
	}
	return c
})

// load instantiates the fixture called name in a fresh runtime, with WASI
// and the safepool.result import, calling _initialize if the module has it
// (and _start, for command modules). It fails the test on any error except
// one from a start function, which is kept in initErr.
func load(t testing.TB, name string, opts hostOptions) *instance {
	t.Helper()
	in := &instance{t: t, ctx: context.Background(), fns: map[string]api.Function{}}
	cfg := wazero.NewRuntimeConfig().WithCompilationCache(compilationCache())
	if opts.memoryPages > 0 {
		cfg = cfg.WithMemoryLimitPages(opts.memoryPages)
	}
	if opts.closeOnDone {
		cfg = cfg.WithCloseOnContextDone(true)
	}
	rt := wazero.NewRuntimeWithConfig(in.ctx, cfg)
	t.Cleanup(func() { rt.Close(in.ctx) })

	wasi_snapshot_preview1.MustInstantiate(in.ctx, rt)
	_, err := rt.NewHostModuleBuilder("safepool").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, m api.Module, stack []uint64) {
			status, ptr, size := api.DecodeU32(stack[0]), api.DecodeU32(stack[1]), api.DecodeU32(stack[2])
			data, ok := m.Memory().Read(ptr, size)
			if !ok {
				panic("safepool.result: bytes out of range")
			}
			in.got = append(in.got, outcome{status, string(data)})
		}), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).
		Export("result").
		// The SDK links the host-call imports; this harness has no host
		// functions, so every call fails (-1 - 0: an empty message).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
			stack[0] = api.EncodeI32(-1)
		}), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
		Export("host_call").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}), []api.ValueType{api.ValueTypeI32}, nil).
		Export("host_take").
		Instantiate(in.ctx)
	require.NoError(t, err)

	compiled, err := rt.CompileModule(in.ctx, testguest.Bytes(t, name))
	require.NoError(t, err)
	mcfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions("_initialize", "_start").
		WithStdin(bytes.NewReader(opts.stdin)).
		WithStdout(&in.stdout).
		WithStderr(&in.stderr)
	if !opts.fakeClock {
		// Real clocks and sleeps, as ABI.md promises.
		mcfg = mcfg.WithSysWalltime().WithSysNanotime().WithSysNanosleep()
	}
	in.mod, in.initErr = rt.InstantiateModule(in.ctx, compiled, mcfg)
	return in
}

// loadSDK loads an SDK module and checks that it speaks ABI version 1.
func loadSDK(t testing.TB, name string, opts hostOptions) *instance {
	t.Helper()
	in := load(t, name, opts)
	require.NoError(t, in.initErr)
	res, err := in.fn("safepool_abi_version").Call(in.ctx)
	require.NoError(t, err)
	require.Equal(t, []uint64{1}, res)
	return in
}

// fn returns the exported function called name, or nil. Each call of
// api.Module.ExportedFunction makes a new call engine, so they are cached.
func (in *instance) fn(name string) api.Function {
	f, ok := in.fns[name]
	if !ok {
		f = in.mod.ExportedFunction(name)
		in.fns[name] = f
	}
	return f
}

// write copies b into guest memory obtained from safepool_alloc.
func (in *instance) write(b []byte) uint32 {
	in.t.Helper()
	res, err := in.fn("safepool_alloc").Call(in.ctx, uint64(len(b)))
	require.NoError(in.t, err)
	ptr := uint32(res[0])
	require.NotZero(in.t, ptr, "safepool_alloc(%d) failed", len(b))
	require.True(in.t, in.mod.Memory().Write(ptr, b))
	return ptr
}

// call runs one task through safepool_call. The name and the input get
// separate allocations, as ABI.md allows. It returns the call's error (a
// trap or an exit) as is, and otherwise the single outcome reported.
func (in *instance) call(ctx context.Context, fn string, input []byte) (outcome, error) {
	in.t.Helper()
	fnPtr := in.write([]byte(fn))
	inPtr := in.write(input)
	in.got = nil
	_, err := in.fn("safepool_call").Call(ctx,
		uint64(fnPtr), uint64(len(fn)), uint64(inPtr), uint64(len(input)))
	if err != nil {
		return outcome{}, err
	}
	require.Len(in.t, in.got, 1, "safepool_call must report exactly one result")
	return in.got[0], nil
}

// mustCall is call for tasks that must not trap.
func (in *instance) mustCall(fn, input string) outcome {
	in.t.Helper()
	o, err := in.call(in.ctx, fn, []byte(input))
	require.NoError(in.t, err, "stderr: %s", in.stderr.String())
	return o
}

// task is one record of a batch.
type task struct{ fn, in string }

// batch runs tasks through safepool_batch and returns every outcome reported
// before it returned or failed.
func (in *instance) batch(tasks ...task) ([]outcome, error) {
	in.t.Helper()
	var buf []byte
	for _, tk := range tasks {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(tk.fn)))
		buf = append(buf, tk.fn...)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(tk.in)))
		buf = append(buf, tk.in...)
	}
	return in.batchRaw(buf)
}

func (in *instance) batchRaw(buf []byte) ([]outcome, error) {
	in.t.Helper()
	fn := in.fn("safepool_batch")
	require.NotNil(in.t, fn, "module has no safepool_batch")
	ptr := in.write(buf)
	in.got = nil
	_, err := fn.Call(in.ctx, uint64(ptr), uint64(len(buf)))
	return in.got, err
}

// handlers returns the names the module reports through safepool_handlers.
func (in *instance) handlers() []string {
	in.t.Helper()
	in.got = nil
	_, err := in.fn("safepool_handlers").Call(in.ctx)
	require.NoError(in.t, err)
	require.Len(in.t, in.got, 1)
	require.Equal(in.t, uint32(statusOK), in.got[0].Status)
	return strings.Split(in.got[0].Data, "\n")
}

// memoryMiB is the current size of the instance's linear memory.
func (in *instance) memoryMiB() float64 {
	return float64(in.mod.Memory().Size()) / (1 << 20)
}
