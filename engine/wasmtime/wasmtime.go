//go:build cgo

package wasmtime

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/module"
)

func init() { engine.Register(engine.Wasmtime, Engine{}) }

// Engine is wasmtime as an engine.Engine.
type Engine struct{}

const (
	// reservation is the address space a wasmtime worker needs on top of
	// a wazero worker's: wasmtime reserves 4 GiB plus guard pages for
	// every 32-bit linear memory, so that its code needs no bounds checks,
	// whatever the memory's cap.
	reservation = 6 << 30

	// maxTableElements bounds table.grow (Store.Limiter), so that a guest
	// cannot make the worker allocate gigabytes of table outside its linear
	// memory cap.
	maxTableElements = 10_000_000
)

// Reservation is the address space wasmtime reserves beyond a memory's cap.
func (Engine) Reservation() uint64 { return reservation }

// newEngine makes a wasmtime engine. The host's Prepare and every worker
// must use the same settings: wasmtime refuses to load code compiled under
// others.
func newEngine() *wasmtime.Engine {
	cfg := wasmtime.NewConfig()
	// The watchdog stops a guest by bumping the engine's epoch; compiled
	// code checks it at every loop header and function entry.
	cfg.SetEpochInterruption(true)
	// Copy-on-write memory images work only with wasmtime's own memories,
	// not with the capped ones installMemoryCap makes: data segments are
	// copied in at instantiation instead, as wazero does.
	cfg.SetMemoryInitCOWSet(false)
	installMemoryCap(cfg)
	return wasmtime.NewEngineWithConfig(cfg)
}

// compiled is the worker's wasmtime engine with the module compiled in it.
// The linkers hold WASI and the safepool host module: linker with the
// engine's stdio, for instances granted no directories, and dirLinker with
// WASI's (wasi.go). Every instance gets a store of its own.
type compiled struct {
	eng       *wasmtime.Engine
	mod       *wasmtime.Module
	linker    *wasmtime.Linker
	dirLinker *wasmtime.Linker
}

// Load checks the module, then compiles it or loads it from the cache entry
// dir, and defines the host functions its instances share.
func (Engine) Load(_ context.Context, wasm []byte, dir string, _ engine.Options) (engine.Compiled, *module.Info, error) {
	// module.Inspect applies the same rules, and the same wasm feature set,
	// as the host did and as the wazero engine does, and it refuses a
	// hostile header before wasmtime decodes the module.
	info, err := module.Inspect(context.Background(), wasm)
	if err != nil {
		return nil, nil, err
	}
	eng := newEngine()
	mod, err := load(eng, wasm, dir)
	if err != nil {
		eng.Close()
		return nil, nil, err
	}
	e := &compiled{eng: eng, mod: mod}
	if e.linker, err = newLinker(eng, true); err == nil {
		e.dirLinker, err = newLinker(eng, false)
	}
	if err != nil {
		e.Close()
		return nil, nil, err
	}
	return e, info, nil
}

// newLinker defines WASI (with the engine's stdio when stdio is set, see
// wasi.go) and the safepool host module.
func newLinker(eng *wasmtime.Engine, stdio bool) (*wasmtime.Linker, error) {
	linker := wasmtime.NewLinker(eng)
	if err := defineWASI(linker, stdio); err != nil {
		linker.Close()
		return nil, fmt.Errorf("wasmtime: define WASI: %w", err)
	}
	i32 := wasmtime.NewValType(wasmtime.KindI32)
	err := linker.FuncNew("safepool", "result", wasmtime.NewFuncType([]*wasmtime.ValType{i32, i32, i32}, nil), hostResult)
	if err == nil {
		err = linker.FuncNew("safepool", "host_call", wasmtime.NewFuncType([]*wasmtime.ValType{i32, i32, i32, i32}, []*wasmtime.ValType{i32}), hostCall)
	}
	if err == nil {
		err = linker.FuncNew("safepool", "host_take", wasmtime.NewFuncType([]*wasmtime.ValType{i32}, nil), hostTake)
	}
	if err != nil {
		linker.Close()
		return nil, fmt.Errorf("wasmtime: define the safepool host module: %w", err)
	}
	return linker, nil
}

func hostResult(c *wasmtime.Caller, args []wasmtime.Val) (_ []wasmtime.Val, trap *wasmtime.Trap) {
	g := guestOf(c)
	defer trapOnPanic(&trap)
	status, ptr, n := u32(args[0]), u32(args[1]), u32(args[2])
	var b []byte
	if n > 0 {
		var ok bool
		if b, ok = g.mem.bytes(ptr, n); !ok {
			panic(fmt.Sprintf("safepool.result: bytes [%d, %d) are outside linear memory", ptr, uint64(ptr)+uint64(n)))
		}
	}
	g.host.Result(status, b)
	return nil, nil
}

// hostCall is safepool.host_call (engine.Host.HostCall).
func hostCall(c *wasmtime.Caller, args []wasmtime.Val) (_ []wasmtime.Val, trap *wasmtime.Trap) {
	g := guestOf(c)
	defer trapOnPanic(&trap)
	if g.host.HostCall == nil {
		panic("safepool.host_call called outside a task")
	}
	name := g.bytesOrPanic("safepool.host_call", u32(args[0]), u32(args[1]))
	in := g.bytesOrPanic("safepool.host_call", u32(args[2]), u32(args[3]))
	return []wasmtime.Val{wasmtime.ValI32(g.host.HostCall(name, in))}, nil
}

// hostTake is safepool.host_take (engine.Host.HostTake).
func hostTake(c *wasmtime.Caller, args []wasmtime.Val) (_ []wasmtime.Val, trap *wasmtime.Trap) {
	g := guestOf(c)
	defer trapOnPanic(&trap)
	if g.host.HostTake == nil {
		panic("safepool.host_take called outside a task")
	}
	b := g.host.HostTake()
	copy(g.bytesOrPanic("safepool.host_take", u32(args[0]), uint32(len(b))), b)
	return nil, nil
}

func (g *guest) bytesOrPanic(fn string, ptr, n uint32) []byte {
	if n == 0 {
		return nil
	}
	b, ok := g.mem.bytes(ptr, n)
	if !ok {
		panic(fmt.Sprintf("%s: bytes [%d, %d) are outside linear memory", fn, ptr, uint64(ptr)+uint64(n)))
	}
	return b
}

// guestOf returns the guest a host function was called from.
func guestOf(c *wasmtime.Caller) *guest {
	g := c.Data().(*guest)
	if g.mem.m == nil {
		// Called while the module was being instantiated (from its start
		// function): its memory exists, but instantiate has not stored it.
		g.mem, _ = madeMemory()
	}
	return g
}

func (e *compiled) Close() {
	for _, l := range []*wasmtime.Linker{e.linker, e.dirLinker} {
		if l != nil {
			l.Close()
		}
	}
	e.mod.Close()
	e.eng.Close()
}

// guest is one instance in a store of its own.
type guest struct {
	e        *compiled
	host     *engine.Host
	store    *wasmtime.Store
	mem      capMem
	fns      [engine.NumExports]*wasmtime.Func
	stdio    *stdio // nil without directories: the engine's stdio (wasi.go)
	stdinOff int
}

func (e *compiled) Instantiate(_ context.Context, h *engine.Host) (engine.Guest, error) {
	g := &guest{e: e, host: h}
	store := wasmtime.NewStoreWithData(e.eng, g)
	// Only the granted args, env and directories; stdio goes to the
	// instance's buffers (wasi.go, stdio.go). Clocks and random are real.
	wasi := wasmtime.NewWasiConfig()
	if len(h.Grants.Env) > 0 {
		keys, values := make([]string, len(h.Grants.Env)), make([]string, len(h.Grants.Env))
		for i, kv := range h.Grants.Env {
			keys[i], values[i], _ = strings.Cut(kv, "=")
		}
		wasi.SetEnv(keys, values)
	}
	if argv := h.Grants.Argv(); argv != nil {
		wasi.SetArgv(argv)
	}
	linker := e.linker
	var sio *stdio
	if len(h.Grants.Dirs) > 0 {
		linker = e.dirLinker
		err := preopen(wasi, h.Grants.Dirs)
		if err == nil {
			sio, err = setStdio(wasi, h.Stdin, h.Stdout, h.Log)
		}
		if err != nil {
			wasi.Close()
			store.Close()
			return nil, &engine.InstantiateError{Err: err}
		}
	}
	store.SetWasi(wasi)
	store.Limiter(-1, maxTableElements, -1, -1, -1) // memory is capped by installMemoryCap
	store.SetEpochDeadline(1)
	prepareMemory(h.Limit)
	in, err := linker.Instantiate(store, e.mod)
	mem, refused := madeMemory()
	if err != nil {
		store.Close()
		sio.close()
		if refused {
			return nil, &engine.MemoryAtStartError{Limit: h.Limit}
		}
		return nil, &engine.InstantiateError{Err: callError(err)}
	}
	sio.flush() // what a start function wrote
	g.store, g.mem, g.stdio = store, mem, sio
	for f := range engine.NumExports {
		g.fns[f] = in.GetFunc(store, f.String())
	}
	return g, nil
}

func (g *guest) Has(fn engine.Export) bool { return g.fns[fn] != nil }

func (g *guest) Call(_ context.Context, fn engine.Export, args ...uint32) (uint32, error) {
	f := g.fns[fn]
	if f == nil {
		return 0, fmt.Errorf("the module does not export %s", fn)
	}
	var params [4]any
	for i, a := range args {
		params[i] = int32(a)
	}
	// The deadline is one epoch past now: the watchdog's next bump stops
	// the call. A bump that came before this line is seen through
	// Interrupted.
	g.store.SetEpochDeadline(1)
	if g.host.Interrupted() {
		return 0, errors.New("interrupted: the task ran past its timeout")
	}
	g.stdio.begin()
	res, err := f.Call(g.store, params[:len(args)]...)
	g.stdio.flush()
	if err != nil {
		return 0, callError(err)
	}
	if v, ok := res.(int32); ok {
		return uint32(v), nil
	}
	return 0, nil
}

// interrupt bumps the engine's epoch, which is safe from any goroutine.
// Only one instance runs at a time in a worker, so the bump stops that one.
func (g *guest) Interrupt() { g.e.eng.IncrementEpoch() }

func (g *guest) Memory(ptr, n uint32) ([]byte, bool) { return g.mem.bytes(ptr, n) }
func (g *guest) CapHit() bool                        { return g.mem.hit() }
func (g *guest) ClearCapHit()                        { g.mem.clearHit() }
func (g *guest) PeakMemory() uint64                  { return g.mem.peak() }

func (g *guest) Close() {
	g.mem = capMem{} // freed with the store
	g.store.Close()
	g.stdio.close() // after the store: wasmtime no longer writes to the pipes
}

// trapNames gives wasmtime's trap codes the words wazero uses, so that a
// task's error reads the same under both engines. The codes are the C
// library's (wasmtime/trap.h): wasmtime-go's TrapCode constants stop
// matching after Interrupt (its OutOfFuel is 11, the library's 12), so the
// raw numbers are compared.
var trapNames = map[uint8]string{
	0:  "stack overflow",
	1:  "out of bounds memory access",
	2:  "unaligned atomic",
	3:  "invalid table access",
	4:  "invalid table access (indirect call to a null entry)",
	5:  "indirect call type mismatch",
	6:  "integer overflow",
	7:  "integer divide by zero",
	8:  "invalid conversion to integer",
	9:  "unreachable",
	10: "interrupted",
	12: "out of fuel",
}

// callError turns a failed call into an *engine.ExitError, or into an
// *engine.TrapError worded as wazero words it.
func callError(err error) error {
	var werr *wasmtime.Error
	if errors.As(err, &werr) {
		if code, ok := werr.ExitStatus(); ok {
			return &engine.ExitError{Code: uint32(code)}
		}
		return trapOf(werr.Error(), "")
	}
	var trap *wasmtime.Trap
	if !errors.As(err, &trap) {
		return err
	}
	name := ""
	if c := trap.Code(); c != nil {
		name = trapNames[uint8(*c)]
	}
	return trapOf(trap.Message(), name)
}

// trapOf reads wasmtime's error text,
//
//	error while executing at wasm backtrace:
//	    0:    0x211 - <unknown>!main.f
//	    ...
//
//	Caused by:
//	    wasm trap: wasm `unreachable` instruction executed
//
// into an *engine.TrapError whose Msg is "wasm error: <name>" when name is
// set, and the cause otherwise (a host function's panic), and whose Trace
// is "wasm stack trace:" and the innermost frames, as wazero's.
func trapOf(msg, name string) *engine.TrapError {
	lines := strings.Split(msg, "\n")
	var frames, cause []string
	inCause := false
	for _, l := range lines[1:] {
		l = strings.TrimSpace(l)
		switch {
		case inCause:
			if l != "" {
				cause = append(cause, strings.TrimPrefix(l, "wasm trap: "))
			}
		case l == "Caused by:":
			inCause = true
		case l != "" && l[0] >= '0' && l[0] <= '9':
			if i := strings.LastIndexByte(l, '!'); i >= 0 {
				frames = append(frames, l[i+1:])
			}
		}
	}
	t := &engine.TrapError{Msg: "wasm error: " + name}
	if name == "" {
		t.Msg = strings.TrimPrefix(lines[0], "wasm trap: ")
		if len(cause) > 0 {
			t.Msg = strings.Join(cause, ": ")
		}
	}
	if len(frames) == 0 {
		return t
	}
	var b strings.Builder
	b.WriteString("wasm stack trace:")
	for i, f := range frames {
		if i == engine.MaxTraceFrames {
			b.WriteString("\n\t...")
			break
		}
		b.WriteString("\n\t" + f)
	}
	t.Trace = b.String()
	return t
}
