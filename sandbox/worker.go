package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
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
}

func serve(end *proc.ChildEnd) error {
	ctx := context.Background()
	in := proc.NewSpinReader(end.In, proc.WorkerSpin)
	r := wire.NewReader(in)
	w := &worker{ctx: ctx, end: end, w: wire.NewWriter(end.Out)}

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
	eng, err := engine.Lookup(cfg.Engine)
	if err != nil {
		return w.fatal(wire.FatalModule, err.Error())
	}
	if err := proc.LimitMemory(addressSpaceLimit(cfg, eng)); err != nil {
		return w.fatal(wire.FatalInternal, err.Error())
	}
	if err := proc.Confine(); err != nil { // seccomp: after the last setrlimit, before any guest code
		return w.fatal(wire.FatalInternal, err.Error())
	}
	wasm, err := os.ReadFile(cfg.ModulePath)
	if err != nil {
		return w.fatal(wire.FatalModule, fmt.Sprintf("read module: %v", err))
	}
	w.eng, w.info, err = eng.Load(ctx, wasm, engine.Dir(cfg.CacheDir, cfg.Engine, wasm))
	if err != nil {
		return w.fatal(wire.FatalModule, err.Error())
	}
	if err := checkStartMemory(w.info.MemoryPages, cfg.MemoryLimit, false); err != nil {
		return w.fatal(wire.FatalModule, err.Error())
	}
	ready := &wire.Ready{Version: wire.Version, Kind: wire.Kind(w.info.Kind)}
	if w.info.Kind == module.KindSDK {
		inst, err := w.newInstance(cfg.MemoryLimit, nil, nil)
		if err != nil {
			code := wire.FatalModule
			if ie := (*engine.InstantiateError)(nil); errors.As(err, &ie) {
				code = wire.FatalInstantiate
			}
			return w.fatal(code, err.Error())
		}
		if ready.Handlers, err = w.handshakeSDK(inst); err != nil {
			return w.fatal(wire.FatalModule, err.Error())
		}
		if !cfg.FreshInstance {
			w.inst = inst
		} else {
			inst.close()
		}
	}
	wasm = nil
	if err := w.w.Send(wire.TypeReady, wire.AppendReady(nil, ready)); err != nil {
		return nil // the host is gone
	}
	// Compiling or loading the module leaves megabytes of garbage (a Go
	// guest's decoded module) that an idle worker would otherwise hold for
	// good: hand it back to the system, beside the first tasks rather than
	// before them.
	go debug.FreeOSMemory()

	// Frames are read on this goroutine, between batches: a hand-off to a
	// reader goroutine costs a thread wake-up per batch, which is most of
	// a single task's round trip. The host keeps at most one batch queued
	// in the pipe, and only when it fits in the pipe's buffer (see
	// internal/hostconn), so it never blocks writing while this worker
	// blocks writing results.
	//
	// After a small batch (an Apply, the tail of a map) the next one is
	// likely a caller's round trip away, so the read polls for it before
	// sleeping. After a big one it sleeps at once: the host is busy
	// feeding every worker, and polling would take its CPU.
	var tasks []wire.Task
	for {
		typ, p, err := r.Read()
		if err != nil {
			return nil // EOF or a closed pipe: the host is done with us
		}
		if typ != wire.TypeBatch {
			return w.fatal(wire.FatalProtocol, fmt.Sprintf("unexpected %s frame", typ))
		}
		tasks, err = wire.DecodeBatchInto(tasks[:0], p) // run before the next Read reuses p
		if err != nil {
			return w.fatal(wire.FatalProtocol, err.Error())
		}
		w.run(tasks)
		w.flush()
		if w.err != nil {
			return nil
		}
		in.SetSpin(len(tasks) <= spinAfterBatch)
	}
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

// spinAfterBatch is the largest batch after which the worker polls for the
// next one (see serve).
const spinAfterBatch = 4

// fatal tells the host why the worker cannot go on. The host reads the
// message's first line as the reason and the lines after it, if any, as a
// log (a stack trace, the guest's output).
func (w *worker) fatal(code wire.FatalCode, msg string) error {
	_ = w.w.Send(wire.TypeFatal, wire.AppendFatal(nil, &wire.Fatal{Code: code, Message: msg}))
	return errors.New(msg)
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
	if w.cfg.Events {
		if err := w.w.Send(wire.TypeStarted, wire.AppendStarted(nil, t.ID)); err != nil && w.err == nil {
			w.err = err
		}
	}
}

func (w *worker) idle() { w.end.Slot.SetRunning(0, 0) }

// memoryLimit returns the task's memory cap: its own, or the worker's.
func (w *worker) memoryLimit(t *wire.Task) uint64 {
	if t.MemoryLimit != 0 {
		return t.MemoryLimit
	}
	return w.cfg.MemoryLimit
}

// run runs a batch in order.
func (w *worker) run(tasks []wire.Task) {
	if w.info.Kind == module.KindCommand {
		for i := range tasks {
			w.runCommand(&tasks[i])
		}
		return
	}
	for len(tasks) > 0 {
		if n := w.batchable(tasks); n > 1 {
			tasks = tasks[w.runBatch(tasks[:n]):]
			continue
		}
		w.runSDK(&tasks[0])
		tasks = tasks[1:]
	}
}

// batchable returns how many leading tasks can cross into the guest in one
// safepool_batch call: they need the same memory cap, and events must be
// off (events are sent per task, which the batch call cannot do).
func (w *worker) batchable(tasks []wire.Task) int {
	if !w.info.Batch || w.cfg.Events || w.cfg.FreshInstance {
		return 1
	}
	n := 1
	for n < len(tasks) && tasks[n].MemoryLimit == tasks[0].MemoryLimit {
		n++
	}
	return n
}

// newInstance starts an instance under a memory cap of limit bytes, and
// under the start timeout: a task's own timeout covers only its call.
func (w *worker) newInstance(limit uint64, stdin []byte, stdout *capBuffer) (*instance, error) {
	if err := checkStartMemory(w.info.MemoryPages, limit, true); err != nil {
		return nil, err
	}
	return newInstance(w.ctx, w.eng, limit, w.cfg.LogLimit, w.cfg.StartTimeout, stdin, stdout)
}

// instanceFor returns the warm instance if it fits the task's cap, or a new
// one.
func (w *worker) instanceFor(limit uint64) (*instance, error) {
	if w.inst != nil && (w.inst.broken || w.inst.limit != limit) {
		w.inst.close()
		w.inst = nil
	}
	if w.inst != nil {
		return w.inst, nil
	}
	inst, err := w.newInstance(limit, nil, nil)
	if err != nil {
		return nil, err
	}
	w.inst = inst
	return inst, nil
}

// afterTask throws the instance away when it is broken or when every task
// gets a fresh one.
func (w *worker) afterTask() {
	if w.inst != nil && (w.inst.broken || w.cfg.FreshInstance) {
		w.inst.close()
		w.inst = nil
	}
}

// startFailure is the result of a task whose instance could not be made.
func startFailure(t *wire.Task, start time.Time, err error) wire.Result {
	r := wire.Result{ID: t.ID, Status: wire.StatusError, Error: err.Error(), Start: start.UnixNano(), End: time.Now().UnixNano()}
	var se *startError
	if errors.As(err, &se) {
		r.Status, r.Error, r.Log = se.status, se.msg, se.detail
	}
	return r
}

// put writes the task's name and input into guest memory, name first.
func (inst *instance) put(ctx context.Context, fn string, in []byte) (uint32, error) {
	n := len(fn) + len(in)
	ptr, err := inst.call(ctx, engine.ExportAlloc, uint32(n))
	if err != nil {
		return 0, err
	}
	if ptr == 0 && n > 0 {
		return 0, errors.New("safepool_alloc returned 0")
	}
	buf, ok := inst.g.Memory(ptr, uint32(n))
	if !ok {
		return 0, fmt.Errorf("safepool_alloc returned %d, outside linear memory", ptr)
	}
	copy(buf, fn)
	copy(buf[len(fn):], in)
	return ptr, nil
}

// runSDK runs one task through safepool_call.
func (w *worker) runSDK(t *wire.Task) {
	limit, timeout := w.memoryLimit(t), w.cfg.Timeout
	start := time.Now()
	w.begin(t, start)
	defer w.idle()
	inst, err := w.instanceFor(limit)
	if err != nil {
		w.emit(startFailure(t, start, err))
		return
	}
	inst.log.Reset()
	inst.g.ClearCapHit()
	res := wire.Result{ID: t.ID, Start: start.UnixNano()}
	got := false
	inst.sink = func(status uint32, b []byte) {
		if got {
			panic("safepool.result called twice for one task")
		}
		got = true
		w.fill(inst, &res, status, b)
	}
	inst.arm(timeout)
	ptr, err := inst.put(w.ctx, t.Func, t.Input)
	if err == nil {
		_, err = inst.call(w.ctx, engine.ExportCall, ptr, uint32(len(t.Func)), ptr+uint32(len(t.Func)), uint32(len(t.Input)))
	}
	inst.disarm()
	inst.sink = nil
	switch {
	case err != nil || inst.timedOut.Load(): // a result after the deadline is too late
		res.Status, res.Error = inst.classify(err, timeout)
		res.Output = nil
	case !got:
		res.Status, res.Error = wire.StatusError, "guest returned no result (safepool_call must call safepool.result once)"
	case res.Status != wire.StatusOK && inst.g.CapHit():
		inst.note("the guest's error: " + res.Error)
		res.Status, res.Error = wire.StatusMemoryLimit, memoryLimitReached(limit)
	}
	res.End = time.Now().UnixNano()
	res.PeakMemory = inst.g.PeakMemory()
	res.Log = inst.log.Bytes()
	w.emit(res)
	w.afterTask()
}

// fill records what the guest passed to safepool.result. An error message
// keeps its first line; the lines after it go to the task's log.
func (w *worker) fill(inst *instance, res *wire.Result, status uint32, b []byte) {
	switch status {
	case 0:
		if uint64(len(b)) > w.cfg.OutputLimit {
			res.Status = wire.StatusError
			res.Error = fmt.Sprintf("output is %s, over the output cap of %s", formatSize(uint64(len(b))), formatSize(w.cfg.OutputLimit))
			return
		}
		res.Status = wire.StatusOK
		// One buffer for every output of a frame instead of one allocation
		// per output. Earlier outputs stay valid when append moves it.
		start := len(w.arena)
		w.arena = append(w.arena, b...)
		res.Output = w.arena[start:len(w.arena):len(w.arena)]
	default:
		res.Status = wire.StatusError
		msg, rest, _ := strings.Cut(string(b[:min(len(b), 64<<10)]), "\n")
		inst.note(rest)
		res.Error = msg
		if status != 1 && status != 2 {
			res.Error = fmt.Sprintf("guest reported unknown status %d: %s", status, res.Error)
		}
	}
}

// runBatch runs tasks through one safepool_batch call and returns how many
// it finished. On a trap the task that was running gets the failure and the
// rest are left to the caller, which runs them on a new instance.
func (w *worker) runBatch(tasks []wire.Task) int {
	limit, timeout := w.memoryLimit(&tasks[0]), w.cfg.Timeout
	start := time.Now()
	w.begin(&tasks[0], start)
	defer w.idle()
	inst, err := w.instanceFor(limit)
	if err != nil {
		w.emit(startFailure(&tasks[0], start, err))
		return 1
	}
	// Encode the records: u32 fn_len, fn, u32 in_len, in.
	size := 0
	for i := range tasks {
		size += 8 + len(tasks[i].Func) + len(tasks[i].Input)
	}
	inst.arm(timeout)
	ptr, err := inst.call(w.ctx, engine.ExportAlloc, uint32(size))
	if err != nil || ptr == 0 {
		inst.disarm()
		return w.batchFallback(tasks, inst, err)
	}
	buf, ok := inst.g.Memory(ptr, uint32(size))
	if !ok {
		inst.disarm()
		return w.batchFallback(tasks, inst, fmt.Errorf("safepool_alloc returned %d, outside linear memory", ptr))
	}
	off := 0
	for i := range tasks {
		off += putRecord(buf[off:], tasks[i].Func)
		off += putRecord(buf[off:], string(tasks[i].Input))
	}

	i := 0
	cur := wire.Result{ID: tasks[0].ID, Start: start.UnixNano()}
	inst.log.Reset()
	inst.g.ClearCapHit()
	inst.sink = func(status uint32, b []byte) {
		if i >= len(tasks) {
			panic("safepool.result called more times than the batch has tasks")
		}
		if inst.timedOut.Load() { // too late: fail the call, so that this task, not the next, is the timeout
			panic("safepool.result called after the task's deadline")
		}
		w.fill(inst, &cur, status, b)
		now := time.Now()
		if cur.Status != wire.StatusOK && inst.g.CapHit() {
			inst.note("the guest's error: " + cur.Error)
			cur.Status, cur.Error = wire.StatusMemoryLimit, memoryLimitReached(limit)
		}
		cur.End = now.UnixNano()
		cur.PeakMemory = inst.g.PeakMemory()
		cur.Log = inst.log.Bytes()
		w.emitAt(cur, now)
		i++
		if i < len(tasks) {
			inst.log.Reset()
			inst.g.ClearCapHit()
			cur = wire.Result{ID: tasks[i].ID, Start: now.UnixNano()}
			w.begin(&tasks[i], now)
			inst.armAt(now, timeout)
		}
	}
	_, err = inst.call(w.ctx, engine.ExportBatch, ptr, uint32(size))
	inst.disarm()
	inst.sink = nil
	switch {
	case err != nil && i < len(tasks):
		cur.Status, cur.Error = inst.classify(err, timeout)
		cur.Output = nil
		cur.End = time.Now().UnixNano()
		cur.PeakMemory = inst.g.PeakMemory()
		cur.Log = inst.log.Bytes()
		w.emit(cur)
		i++
	case err != nil:
		inst.broken = true // failed after the last result; the results stand
	case i < len(tasks):
		// The guest returned early. Report the task it was on, and let the
		// caller run the rest one by one.
		cur.Status, cur.Error = wire.StatusError, "guest returned no result (safepool_batch must call safepool.result once per record)"
		cur.End = time.Now().UnixNano()
		w.emit(cur)
		i++
	}
	w.afterTask()
	return i
}

// batchFallback handles a batch that could not be written into the guest
// (usually because the buffer would not fit under the memory cap): run the
// first task alone, where a cap hit is reported properly.
func (w *worker) batchFallback(tasks []wire.Task, inst *instance, _ error) int {
	inst.broken = true
	w.afterTask()
	w.idle()
	w.runSDK(&tasks[0])
	return 1
}

func putRecord(b []byte, s string) int {
	binary.LittleEndian.PutUint32(b, uint32(len(s)))
	copy(b[4:], s)
	return 4 + len(s)
}

// runCommand runs a WASI command module once, in a fresh instance.
func (w *worker) runCommand(t *wire.Task) {
	limit, timeout := w.memoryLimit(t), w.cfg.Timeout
	start := time.Now()
	w.begin(t, start)
	defer w.idle()
	stdout := &capBuffer{max: int(w.cfg.OutputLimit)}
	inst, err := w.newInstance(limit, t.Input, stdout)
	if err != nil {
		w.emit(startFailure(t, start, err))
		return
	}
	defer inst.close()
	res := wire.Result{ID: t.ID, Start: start.UnixNano()}
	inst.arm(timeout)
	_, err = inst.call(w.ctx, engine.ExportStart)
	inst.disarm()
	if code, ok := exitCode(err); ok && code == 0 && !inst.timedOut.Load() {
		err = nil // proc_exit(0) is how a command says it succeeded
	}
	switch {
	case err != nil:
		res.Status, res.Error = inst.classify(err, timeout)
	case stdout.over:
		res.Status = wire.StatusError
		res.Error = fmt.Sprintf("output is over the output cap of %s", formatSize(w.cfg.OutputLimit))
	default:
		res.Status = wire.StatusOK
		res.Output = stdout.buf
	}
	res.End = time.Now().UnixNano()
	res.PeakMemory = inst.g.PeakMemory()
	res.Log = inst.log.Bytes()
	w.emit(res)
}
