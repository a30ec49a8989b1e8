package wazero

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/safepool/safepool/internal/engine"
)

// compiled is the worker's wazero runtime with the module compiled in it.
type compiled struct {
	rt   wazero.Runtime
	cm   wazero.CompiledModule
	base wazero.ModuleConfig
	// interruptible is false for a module compiled with
	// engine.Options.NoInterrupt: cancelling a call's context would not
	// stop it, so calls skip making one.
	interruptible bool

	// resettable says that the module was compiled from exportGlobals'
	// binary, whose mutable globals are exported under the names globals,
	// and that nothing else in an instance needs restoring: its guests
	// can be reset (reset.go).
	resettable bool
	globals    []string

	// cur is the guest whose call is running; the safepool.result host
	// function reports to it. Only the worker's main goroutine sets it.
	cur *guest
}

func (c *compiled) hostResult(ctx context.Context, m api.Module, stack []uint64) {
	status, ptr, n := uint32(stack[0]), uint32(stack[1]), uint32(stack[2])
	g := c.cur
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
	g.host.Result(status, b)
}

// hostCall is safepool.host_call (engine.Host.HostCall). Bytes outside
// linear memory are the guest's mistake, and trap.
func (c *compiled) hostCall(_ context.Context, m api.Module, stack []uint64) {
	g := c.cur
	if g == nil || g.host.HostCall == nil {
		panic("safepool.host_call called outside a task")
	}
	name := readOrPanic(m, "safepool.host_call", uint32(stack[0]), uint32(stack[1]))
	in := readOrPanic(m, "safepool.host_call", uint32(stack[2]), uint32(stack[3]))
	stack[0] = api.EncodeI32(g.host.HostCall(name, in))
}

// hostTake is safepool.host_take (engine.Host.HostTake).
func (c *compiled) hostTake(_ context.Context, m api.Module, stack []uint64) {
	g := c.cur
	if g == nil || g.host.HostTake == nil {
		panic("safepool.host_take called outside a task")
	}
	b := g.host.HostTake()
	if len(b) > 0 && !m.Memory().Write(uint32(stack[0]), b) {
		panic(fmt.Sprintf("safepool.host_take: bytes [%d, %d) are outside linear memory", uint32(stack[0]), uint64(uint32(stack[0]))+uint64(len(b))))
	}
}

func readOrPanic(m api.Module, fn string, ptr, n uint32) []byte {
	if n == 0 {
		return nil
	}
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		panic(fmt.Sprintf("%s: bytes [%d, %d) are outside linear memory", fn, ptr, uint64(ptr)+uint64(n)))
	}
	return b
}

func (c *compiled) Close() { c.rt.Close(context.Background()) }

// guest is one wazero instance with its memory cap.
type guest struct {
	c    *compiled
	host *engine.Host
	mod  api.Module
	mem  api.Memory
	cap  *memCap
	fns  [engine.NumExports]api.Function

	cancel  atomic.Pointer[context.CancelFunc] // cancels the running call
	unmount func()                             // closes the granted directories' descriptors

	snap  snapshot   // state to reset to (reset.go)
	clock rewindable // the monotonic clock of a resettable instance (clock.go)
}

func (c *compiled) Instantiate(ctx context.Context, h *engine.Host) (_ engine.Guest, err error) {
	g := &guest{c: c, host: h, cap: &memCap{limit: h.Limit}}
	cfg := c.base.WithStderr(h.Log).WithNanosleep(func(ns int64) { h.Sleep(ns) })
	if c.resettable {
		cfg = cfg.WithNanotime(g.clock.nanotime, clockResolution)
	}
	if h.Stdout != nil {
		cfg = cfg.WithStdout(h.Stdout).WithStdin(bytes.NewReader(h.Stdin))
	} else {
		cfg = cfg.WithStdout(h.Log)
	}
	for _, kv := range h.Grants.Env {
		k, v, _ := strings.Cut(kv, "=")
		cfg = cfg.WithEnv(k, v)
	}
	if argv := h.Grants.Argv(); argv != nil {
		cfg = cfg.WithArgs(argv...)
	}
	if len(h.Grants.Dirs) > 0 {
		fsc, unmount, err := mountDirs(h.Grants.Dirs)
		if err != nil {
			return nil, &engine.InstantiateError{Err: err}
		}
		g.unmount = unmount
		cfg = cfg.WithFSConfig(fsc)
		defer func() {
			if err != nil {
				unmount()
			}
		}()
	}
	defer func() {
		// wazero does not expect an allocator to refuse a memory's initial
		// size, and panics slicing the nil it gets back. Any other panic
		// goes on: a worker that dies while starting tells the pool that
		// its compilation cache may be damaged (see engine.Forget).
		if g.cap.hit.Load() {
			if r := recover(); r != nil {
				err = &engine.MemoryAtStartError{Limit: h.Limit}
			}
		}
	}()
	mod, err := c.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, g.cap), c.cm, cfg)
	if err != nil {
		if g.cap.hit.Load() {
			return nil, &engine.MemoryAtStartError{Limit: h.Limit}
		}
		return nil, &engine.InstantiateError{Err: callError(err)}
	}
	g.mod = mod
	g.mem = mod.Memory()
	for f := range engine.NumExports {
		g.fns[f] = mod.ExportedFunction(f.String())
	}
	return g, nil
}

func (g *guest) Has(fn engine.Export) bool { return g.fns[fn] != nil }

func (g *guest) Call(ctx context.Context, fn engine.Export, args ...uint32) (uint32, error) {
	f := g.fns[fn]
	if f == nil {
		return 0, fmt.Errorf("the module does not export %s", fn)
	}
	var params [4]uint64
	for i, a := range args {
		params[i] = uint64(a)
	}
	cctx := ctx
	if g.c.interruptible {
		var cancel context.CancelFunc
		cctx, cancel = context.WithCancel(ctx)
		g.cancel.Store(&cancel)
		if g.host.Interrupted() {
			cancel() // the watchdog fired before this call could be stopped
		}
		defer func() {
			g.cancel.Store(nil)
			cancel()
		}()
	}
	g.c.cur = g
	res, err := f.Call(cctx, params[:len(args)]...)
	g.c.cur = nil
	if err != nil {
		return 0, callError(err)
	}
	if len(res) == 0 {
		return 0, nil
	}
	return uint32(res[0]), nil
}

// callError turns a failed call into an *engine.ExitError or an
// *engine.TrapError. wazero's text is already the trap's line ("wasm error:
// unreachable"), or a host function's panic ending in " (recovered by
// wazero)", then the stack.
func callError(err error) error {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return &engine.ExitError{Code: exit.ExitCode()}
	}
	msg, trace, _ := strings.Cut(err.Error(), "\n")
	msg = strings.TrimSuffix(msg, " (recovered by wazero)")
	if msg == "stack overflow" {
		// wazero's compiler returns this one trap bare, without its prefix
		// or a stack, to avoid unwinding a full stack (v1.12).
		msg = "wasm error: stack overflow"
	}
	// Keep the innermost frames, not all of them.
	if lines := strings.Split(trace, "\n"); len(lines) > engine.MaxTraceFrames+1 {
		trace = strings.Join(lines[:engine.MaxTraceFrames+1], "\n") + "\n\t..."
	}
	return &engine.TrapError{Msg: msg, Trace: trace}
}

// Interrupt cancels the running call's context. wazero then marks the
// module closed without freeing its memory; the compiled code checks that
// mark at every loop header and function entry, so the guest stops wherever
// it is. (Module.CloseWithExitCode would free the linear memory under the
// running guest.) A module compiled with engine.Options.NoInterrupt has no
// such checks, and Interrupt does nothing.
func (g *guest) Interrupt() {
	if c := g.cancel.Load(); c != nil {
		(*c)()
	}
}

func (g *guest) Memory(ptr, n uint32) ([]byte, bool) {
	if g.mem == nil {
		return nil, false
	}
	return g.mem.Read(ptr, n)
}

func (g *guest) CapHit() bool       { return g.cap.hit.Load() }
func (g *guest) ClearCapHit()       { g.cap.hit.Store(false) }
func (g *guest) PeakMemory() uint64 { return g.cap.peak.Load() }

func (g *guest) Close() {
	if g.mod != nil {
		_ = g.mod.Close(context.Background())
	}
	if g.unmount != nil {
		g.unmount()
	}
}
