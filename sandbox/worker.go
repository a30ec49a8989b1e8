package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/trace"
	"strings"
	"time"

	"github.com/safepool/safepool/internal/engine"
	_ "github.com/safepool/safepool/internal/engine/wazero" // the default engine, in every worker
	"github.com/safepool/safepool/internal/proc"
	"github.com/safepool/safepool/internal/wire"
	"github.com/safepool/safepool/module"
)

func init() {
	// A pool re-executes its own binary with proc.WorkerArg; become the
	// worker before the program's main runs.
	//
	// Engines that the program imports (engine/wasmtime) register from
	// their own init, which must have run by now. Go initializes a package
	// after every package it imports and otherwise in import-path order, so
	// an engine package whose imports are its binding, internal/engine and
	// module, all initialized before this package, comes first
	// (".../engine/wasmtime" < ".../sandbox"). The wasmtime module's
	// conformance test fails if that ever stops being so.
	if proc.IsWorker() {
		Main()
	}
}

// Main runs this process as a worker and never returns. It expects the
// descriptors a pool passes to its workers; started any other way it prints
// an error and exits with code 2.
func Main() {
	end, err := proc.Child()
	if err != nil {
		fmt.Fprintln(os.Stderr, "safepool worker:", err)
		fmt.Fprintln(os.Stderr, "this command is started by a pool; it is not meant to be run by hand")
		os.Exit(2)
	}
	if err := serve(end); err != nil {
		fmt.Fprintln(os.Stderr, "safepool worker:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// flushEvery bounds how long finished results wait in the worker before they
// are sent, so that progress stays visible during long batches.
const flushEvery = 2 * time.Millisecond

type worker struct {
	ctx  context.Context
	cfg  *wire.Init
	end  *proc.ChildEnd
	w    *wire.Writer
	eng  engine.Compiled
	info *module.Info
	inst *instance // the warm SDK instance, nil until needed

	pending   []wire.Result
	arena     []byte // outputs of the pending results, copied out of guest memory
	lastFlush time.Time
	frame     []byte
	err       error // first write error: the host is gone

	// mustReset is set when a task of a FreshInstance worker has ended
	// and its instance is still to be reset (fresh.go).
	mustReset bool

	hc         hostCalls
	curTimeout time.Duration // the running task's timeout: its own or the pool's
}

// exit ends the process; a variable so that nothing else needs os here.
var exit = os.Exit

// serve is the worker's life: the handshake's Init, the process's
// confinement, the module's load and start, the handshake's answer, then
// batches until the host closes the input. It returns nil when the host is
// done or gone; every error after the Init frame has been read has also
// been sent to the host as a Fatal.
func serve(end *proc.ChildEnd) error {
	in := proc.NewSpinReader(end.In, proc.WorkerSpin, true)
	r := wire.NewReader(in)
	w := &worker{ctx: context.Background(), end: end, w: wire.NewWriter(end.Out)}
	w.hc.r = r
	if err := w.readInit(r); err != nil {
		return err
	}
	stopTrace, err := startTrace()
	if err != nil {
		return w.fatal(wire.FatalInternal, err.Error())
	}
	if stopTrace != nil {
		defer stopTrace()
	}
	eng, err := engine.Lookup(w.cfg.Engine)
	if err != nil {
		return w.fatal(wire.FatalModule, err.Error())
	}
	if err := w.confine(eng); err != nil {
		return err
	}
	if err := w.load(eng); err != nil {
		return err
	}
	ready, err := w.startModule()
	if err != nil {
		return err
	}
	if err := w.w.Send(wire.TypeReady, wire.AppendReady(nil, ready)); err != nil {
		return nil // the host is gone
	}
	// Compiling or loading the module leaves megabytes of garbage (a Go
	// guest's decoded module) that an idle worker would otherwise hold for
	// good: hand it back to the system, beside the first tasks rather than
	// before them. Start-up also touched megabytes of this binary's code
	// and tables that a worker at work never uses again: unmap them too
	// (proc.TrimFilePages).
	go func() {
		debug.FreeOSMemory()
		proc.TrimFilePages()
	}()
	return w.loop(r, in)
}

// readInit reads the host's Init and keeps it as the worker's
// configuration. Anything but an Init of this protocol version is fatal.
func (w *worker) readInit(r *wire.Reader) error {
	typ, p, err := r.Read()
	if err != nil {
		return fmt.Errorf("read init: %w", err)
	}
	if typ != wire.TypeInit {
		return w.fatal(wire.FatalProtocol, fmt.Sprintf("expected an init frame, got %s", typ))
	}
	cfg, err := wire.DecodeInit(p)
	if err != nil {
		return w.fatal(wire.FatalProtocol, err.Error())
	}
	if cfg.Version != wire.Version {
		return w.fatal(wire.FatalVersion, fmt.Sprintf("host speaks protocol version %d, this worker speaks %d; use the same safepool build for host and worker", cfg.Version, wire.Version))
	}
	w.cfg = cfg
	return nil
}

// confine sets the process's address-space backstop and installs its
// seccomp filter, before any guest code runs.
func (w *worker) confine(eng engine.Engine) error {
	w.prepareReset(eng)
	if err := proc.LimitMemory(addressSpaceLimit(w.cfg, eng)); err != nil {
		return w.fatal(wire.FatalInternal, err.Error())
	}
	if err := proc.Confine(); err != nil { // seccomp: after the last setrlimit, before any guest code
		return w.fatal(wire.FatalInternal, err.Error())
	}
	return nil
}

// addressSpaceLimit is the worker's address-space backstop: the host's
// figure, plus what the engine reserves beyond the linear memory the host
// counted.
func addressSpaceLimit(cfg *wire.Init, eng engine.Engine) uint64 {
	if cfg.ProcessLimit == 0 {
		return 0
	}
	return cfg.ProcessLimit + eng.Reservation()
}

// load reads the module and has the engine check it and compile it, or
// load its machine code from the cache. A module that cannot run, or that
// needs more memory to start than the worker's cap, is fatal.
func (w *worker) load(eng engine.Engine) error {
	wasm, err := os.ReadFile(w.cfg.ModulePath)
	if err != nil {
		return w.fatal(wire.FatalModule, fmt.Sprintf("read module: %v", err))
	}
	w.eng, w.info, err = eng.Load(w.ctx, wasm, engine.Dir(w.cfg.CacheDir, w.cfg.Engine, wasm, w.opts()), w.opts())
	if err != nil {
		return w.fatal(wire.FatalModule, err.Error())
	}
	if err := checkStartMemory(w.info.MemoryPages, w.cfg.MemoryLimit, false); err != nil {
		return w.fatal(wire.FatalModule, err.Error())
	}
	return nil
}

// startModule returns the handshake's answer. For an SDK module it starts
// the first instance and asks it for its ABI version and its handlers; the
// instance stays warm for the first task; with FreshInstance it is
// snapshot first, to be reset to that state after each task. A start-up
// that fails is fatal.
func (w *worker) startModule() (*wire.Ready, error) {
	ready := &wire.Ready{Version: wire.Version, Kind: wire.Kind(w.info.Kind)}
	if w.info.Kind != module.KindSDK {
		return ready, nil
	}
	inst, err := w.newInstance(w.cfg.MemoryLimit, nil, nil)
	if err != nil {
		return nil, w.fatal(startCode(err), err.Error())
	}
	if ready.Handlers, err = w.handshakeSDK(inst); err != nil {
		return nil, w.fatal(wire.FatalModule, err.Error())
	}
	if w.cfg.FreshInstance {
		if inst, err = w.snapshotForReset(inst, ready.Handlers); err != nil {
			return nil, w.fatal(startCode(err), err.Error())
		}
		if inst.resetter == nil {
			inst.close() // the first task gets a new instance, as every task does
			return ready, nil
		}
	}
	w.inst = inst
	return ready, nil
}

// startCode is the Fatal code of a start-up that failed with err.
func startCode(err error) wire.FatalCode {
	if ie := (*engine.InstantiateError)(nil); errors.As(err, &ie) {
		return wire.FatalInstantiate
	}
	return wire.FatalModule
}

// handshakeSDK checks the guest's ABI version and asks for its handlers,
// as part of the instance's start-up.
func (w *worker) handshakeSDK(inst *instance) ([]string, error) {
	v, err := inst.startCall(w.ctx, engine.ExportABIVersion)
	if err != nil {
		return nil, inst.startFailed("safepool_abi_version", err)
	}
	if v != module.ABIVersion {
		return nil, fmt.Errorf("%w: the module speaks guest ABI %d, this worker speaks %d", module.ErrABIVersion, v, module.ABIVersion)
	}
	var names []string
	inst.sink = func(_ uint32, b []byte) {
		for _, n := range strings.Split(string(b), "\n") {
			if n != "" {
				names = append(names, n)
			}
		}
	}
	_, err = inst.startCall(w.ctx, engine.ExportHandlers)
	inst.sink = nil
	if err != nil {
		return nil, inst.startFailed("safepool_handlers", err)
	}
	return names, nil
}

// loop runs batches until the host closes the worker's input or stops
// reading its results. A frame that is not a well-formed batch is fatal.
//
// Frames are read on this goroutine, between batches: a hand-off to a
// reader goroutine costs a thread wake-up per batch, which is most of a
// single task's round trip. The host keeps at most one batch queued in the
// pipe, and only when it fits in the pipe's buffer (see internal/hostconn),
// so it never blocks writing while this worker blocks writing results.
//
// After a small batch (an Apply, the tail of a map) the next one is likely
// a caller's round trip away, so the read polls for it before sleeping.
// After a big one it sleeps at once: the host is busy feeding every worker,
// and polling would take its CPU.
func (w *worker) loop(r *wire.Reader, in *proc.SpinReader) error {
	var tasks []wire.Task
	for {
		var typ wire.Type
		var p []byte
		var err error
		if len(w.hc.stash) > 0 { // batches that came during a host call
			typ, p = wire.TypeBatch, w.hc.stash[0]
			w.hc.stash = w.hc.stash[1:]
		} else if typ, p, err = r.Read(); err != nil {
			return nil // EOF or a closed pipe: the host is done with us
		}
		if typ != wire.TypeBatch {
			return w.fatal(wire.FatalProtocol, fmt.Sprintf("unexpected %s frame", typ))
		}
		tasks, err = wire.DecodeBatchInto(tasks[:0], p) // run before the next Read reuses p
		if err != nil {
			return w.fatal(wire.FatalProtocol, err.Error())
		}
		region := trace.StartRegion(w.ctx, "batch") // nothing unless traced (trace.go)
		w.run(tasks)
		w.flush()
		region.End()
		if w.err != nil {
			return nil
		}
		w.resetPending() // once the results are on their way (fresh.go)
		in.SetSpin(len(tasks) <= spinAfterBatch)
	}
}

// spinAfterBatch is the largest batch after which the worker polls for the
// next one (see loop).
const spinAfterBatch = 4

// fatal tells the host why the worker cannot go on. The host reads the
// message's first line as the reason and the lines after it, if any, as a
// log (a stack trace, the guest's output).
func (w *worker) fatal(code wire.FatalCode, msg string) error {
	_ = w.w.Send(wire.TypeFatal, wire.AppendFatal(nil, &wire.Fatal{Code: code, Message: msg}))
	return errors.New(msg)
}

// emit queues a result, sending it at once when events are on or the last
// send is older than flushEvery.
func (w *worker) emit(r wire.Result) { w.emitAt(r, time.Now()) }

// emitAt is emit at the time now.
func (w *worker) emitAt(r wire.Result, now time.Time) {
	w.pending = append(w.pending, r)
	if w.cfg.Events || now.Sub(w.lastFlush) > flushEvery {
		w.flush()
	}
}

func (w *worker) flush() {
	if len(w.pending) == 0 || w.err != nil {
		return
	}
	w.frame = wire.AppendResults(w.frame[:0], w.pending)
	w.err = w.w.Send(wire.TypeResults, w.frame)
	clear(w.pending) // drop references into the arena and to logs
	w.pending = w.pending[:0]
	w.arena = w.arena[:0]
	if cap(w.arena) > 4<<20 {
		w.arena = nil // do not keep a rare huge output's buffer
	}
	w.lastFlush = time.Now()
}

// begin marks a task as running: in the shared slot, so the host can blame
// it if the process dies, and as an event when the host asked for them.
func (w *worker) begin(t *wire.Task, start time.Time) {
	w.end.Slot.SetRunning(t.ID, start.UnixNano())
	w.setTask(t.ID)
	w.curTimeout = w.cfg.Timeout
	if t.Timeout > 0 && (w.cfg.Timeout == 0 || t.Timeout < w.cfg.Timeout) {
		w.curTimeout = t.Timeout // a call's own, never longer than the pool's
	}
	if w.cfg.Events {
		if err := w.w.Send(wire.TypeStarted, wire.AppendStarted(nil, t.ID)); err != nil && w.err == nil {
			w.err = err
		}
	}
}

func (w *worker) idle() { w.end.Slot.SetRunning(0, 0) }
