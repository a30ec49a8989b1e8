//go:build wasmtime && cgo

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/safepool/safepool/module"
)

const (
	wasmtimeBuilt = true

	// wasmtimeReservation is the address space a wasmtime worker needs on
	// top of a wazero worker's: wasmtime reserves 4 GiB plus guard pages
	// for every 32-bit linear memory, so that its code needs no bounds
	// checks, whatever the memory's cap.
	wasmtimeReservation = 6 << 30

	// maxTableElements bounds table.grow (Store.Limiter), so that a guest
	// cannot make the worker allocate gigabytes of table outside its linear
	// memory cap.
	maxTableElements = 10_000_000
)

// newWasmtimeEngine makes an engine. The host's Precompile and every worker
// must use the same settings: wasmtime refuses to load code compiled under
// others.
func newWasmtimeEngine() *wasmtime.Engine {
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

// wasmtimeEngine is the worker's wasmtime engine with the module compiled in
// it. The linker holds WASI and the safepool host module; every instance
// gets a store of its own.
type wasmtimeEngine struct {
	eng    *wasmtime.Engine
	mod    *wasmtime.Module
	linker *wasmtime.Linker
}

func newWasmtime(wasm []byte, cacheDir string) (engine, *module.Info, error) {
	// module.Inspect applies the same rules, and the same wasm feature set,
	// as the host did and as the wazero engine does, and it refuses a
	// hostile header before wasmtime decodes the module.
	info, err := module.Inspect(context.Background(), wasm)
	if err != nil {
		return nil, nil, err
	}
	eng := newWasmtimeEngine()
	mod, err := loadWasmtime(eng, wasm, cacheDir)
	if err != nil {
		eng.Close()
		return nil, nil, err
	}
	e := &wasmtimeEngine{eng: eng, mod: mod, linker: wasmtime.NewLinker(eng)}
	if err := e.defineWASI(); err != nil {
		e.close()
		return nil, nil, fmt.Errorf("sandbox: define WASI: %w", err)
	}
	i32 := wasmtime.NewValType(wasmtime.KindI32)
	err = e.linker.FuncNew("safepool", "result", wasmtime.NewFuncType([]*wasmtime.ValType{i32, i32, i32}, nil), hostResult)
	if err != nil {
		e.close()
		return nil, nil, fmt.Errorf("sandbox: define the safepool host module: %w", err)
	}
	return e, info, nil
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
	g.inst.onResult(status, b)
	return nil, nil
}

// guestOf returns the guest a host function was called from.
func guestOf(c *wasmtime.Caller) *wasmtimeGuest {
	g := c.Data().(*wasmtimeGuest)
	if g.mem.m == nil {
		// Called while the module was being instantiated (from its start
		// function): its memory exists, but instantiate has not stored it.
		g.mem, _ = madeMemory()
	}
	return g
}

func (e *wasmtimeEngine) close() {
	e.linker.Close()
	e.mod.Close()
	e.eng.Close()
}

// wasmtimeGuest is one instance in a store of its own.
type wasmtimeGuest struct {
	e        *wasmtimeEngine
	inst     *instance
	store    *wasmtime.Store
	mem      capMem
	fns      [numExports]*wasmtime.Func
	stdinOff int
}

func (e *wasmtimeEngine) instantiate(_ context.Context, inst *instance) (guest, error) {
	g := &wasmtimeGuest{e: e, inst: inst}
	store := wasmtime.NewStoreWithData(e.eng, g)
	// No args, no env, no preopens; stdio goes through fd_read and
	// fd_write (wasmtime_wasi.go). Clocks and random are real.
	store.SetWasi(wasmtime.NewWasiConfig())
	store.Limiter(-1, maxTableElements, -1, -1, -1) // memory is capped by installMemoryCap
	store.SetEpochDeadline(1)
	prepareMemory(inst.limit)
	in, err := e.linker.Instantiate(store, e.mod)
	mem, refused := madeMemory()
	if err != nil {
		store.Close()
		if refused {
			return nil, errMemoryAtStart{inst.limit}
		}
		return nil, &instantiateError{wasmtimeError(err)}
	}
	g.store, g.mem = store, mem
	for f := range numExports {
		g.fns[f] = in.GetFunc(store, exportNames[f])
	}
	return g, nil
}

func (g *wasmtimeGuest) has(fn export) bool { return g.fns[fn] != nil }

func (g *wasmtimeGuest) call(_ context.Context, fn export, args ...uint32) (uint32, error) {
	f := g.fns[fn]
	if f == nil {
		return 0, fmt.Errorf("the module does not export %s", fn)
	}
	var params [4]any
	for i, a := range args {
		params[i] = int32(a)
	}
	// The deadline is one epoch past now: the watchdog's next bump stops
	// the call. A bump that came before this line is seen through timedOut.
	g.store.SetEpochDeadline(1)
	if g.inst.timedOut.Load() {
		return 0, errors.New("interrupted: the task ran past its timeout")
	}
	res, err := f.Call(g.store, params[:len(args)]...)
	if err != nil {
		return 0, wasmtimeError(err)
	}
	if v, ok := res.(int32); ok {
		return uint32(v), nil
	}
	return 0, nil
}

// interrupt bumps the engine's epoch, which is safe from any goroutine.
// Only one instance runs at a time in a worker, so the bump stops that one.
func (g *wasmtimeGuest) interrupt() { g.e.eng.IncrementEpoch() }

func (g *wasmtimeGuest) memory(ptr, n uint32) ([]byte, bool) { return g.mem.bytes(ptr, n) }
func (g *wasmtimeGuest) capHit() bool                        { return g.mem.hit() }
func (g *wasmtimeGuest) clearCapHit()                        { g.mem.clearHit() }
func (g *wasmtimeGuest) peakMemory() uint64                  { return g.mem.peak() }

func (g *wasmtimeGuest) close() {
	g.mem = capMem{} // freed with the store
	g.store.Close()
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

// wasmtimeError turns a failed call into an exitError, or into a trapError
// worded as wazero words it.
func wasmtimeError(err error) error {
	var werr *wasmtime.Error
	if errors.As(err, &werr) {
		if code, ok := werr.ExitStatus(); ok {
			return &exitError{uint32(code)}
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
// into a trapError whose msg is "wasm error: <name>" when name is set, and
// the cause otherwise (a host function's panic), and whose trace is
// "wasm stack trace:" and the innermost frames, as wazero's.
func trapOf(msg, name string) *trapError {
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
	t := &trapError{msg: "wasm error: " + name}
	if name == "" {
		t.msg = strings.TrimPrefix(lines[0], "wasm trap: ")
		if len(cause) > 0 {
			t.msg = strings.Join(cause, ": ")
		}
	}
	if len(frames) == 0 {
		return t
	}
	var b strings.Builder
	b.WriteString("wasm stack trace:")
	for i, f := range frames {
		if i == maxTraceFrames {
			b.WriteString("\n\t...")
			break
		}
		b.WriteString("\n\t" + f)
	}
	t.trace = b.String()
	return t
}
