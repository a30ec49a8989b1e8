package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/trace"
	"strings"
	"time"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/internal/wire"
	"github.com/safepool/safepool/module"
)

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
	if !w.info.Batch || w.cfg.Events || w.cfg.FreshInstance || len(w.cfg.HostFuncs) > 0 {
		return 1
	}
	n := 1
	for n < len(tasks) && tasks[n].MemoryLimit == tasks[0].MemoryLimit && tasks[n].Timeout == tasks[0].Timeout {
		n++
	}
	return n
}

// memoryLimit returns the task's memory cap: its own, or the worker's.
func (w *worker) memoryLimit(t *wire.Task) uint64 {
	if t.MemoryLimit != 0 {
		return t.MemoryLimit
	}
	return w.cfg.MemoryLimit
}

// newInstance starts an instance under a memory cap of limit bytes, and
// under the start timeout: a task's own timeout covers only its call.
func (w *worker) newInstance(limit uint64, stdin []byte, stdout *capBuffer) (*instance, error) {
	if err := checkStartMemory(w.info.MemoryPages, limit, true); err != nil {
		return nil, err
	}
	var stuck func(string)
	if w.opts().NoInterrupt {
		stuck = w.stuck
	}
	return newInstance(w.ctx, w.eng, limit, w.cfg.LogLimit, w.cfg.StartTimeout, stdin, stdout, stuck, w.grants(), w.hostCall, w.hostTake)
}

// grants are what the pool lets the guest see (wire.Init): nothing unless
// granted.
func (w *worker) grants() engine.Grants {
	g := engine.Grants{Env: w.cfg.Env, Args: w.cfg.Args, Program: w.cfg.Program}
	for _, d := range w.cfg.Dirs {
		g.Dirs = append(g.Dirs, engine.GrantedDir{HostPath: d.HostPath, GuestPath: d.GuestPath, Writable: d.Writable})
	}
	return g
}

// opts are the settings the module is compiled with. Without a task
// timeout no task is ever interrupted, so the module is compiled without
// the engine's interrupt checks, which under wazero cost more than a small
// task itself; the host's Prepare makes the same choice (pool.New).
//
// With FreshInstance the module is compiled so that its instances can be
// reset (engine.Options.Resettable), as the host's Prepare does too.
func (w *worker) opts() engine.Options {
	return engine.Options{NoInterrupt: w.cfg.Timeout == 0, Resettable: w.cfg.FreshInstance}
}

// stuck ends a worker whose instance's start-up, the call named what, ran
// past the start timeout in guest code that the engine cannot interrupt
// (see opts). It runs on the watchdog's goroutine while the worker's own
// goroutine is inside that call, so nothing else writes to the host: it
// sends the reason as a Fatal frame and exits. At the handshake the host
// reports it as the start-up's failure; in the middle of a run the host
// blames the task that needed the instance, whose worker died, and sends
// the tasks queued behind it again.
func (w *worker) stuck(what string) {
	_ = w.fatal(wire.FatalModule, startTimedOut(what, w.cfg.StartTimeout))
	os.Exit(1)
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

// runSDK runs one task through safepool_call.
func (w *worker) runSDK(t *wire.Task) {
	start := time.Now()
	w.begin(t, start)
	defer w.idle()
	inst, err := w.instanceFor(w.memoryLimit(t))
	if err != nil {
		w.emit(startFailure(t, start, err))
		return
	}
	inst.reset()
	res := wire.Result{ID: t.ID, Start: start.UnixNano()}
	got := false
	inst.sink = func(status uint32, b []byte) {
		if got {
			panic("safepool.result called twice for one task")
		}
		got = true
		w.fill(inst, &res, status, b)
	}
	inst.arm(w.curTimeout)
	region := trace.StartRegion(w.ctx, "guest")
	err = inst.callTask(w.ctx, t.Func, t.Input)
	region.End()
	inst.disarm()
	inst.sink = nil
	if err == nil && !got {
		err = faultyReturn("guest returned no result (safepool_call must call safepool.result once)")
	}
	w.finish(inst, &res, err, time.Now())
	w.afterTask()
}

// callTask runs safepool_call on the task's name and input, written into
// guest memory first.
func (inst *instance) callTask(ctx context.Context, fn string, in []byte) error {
	ptr, err := inst.put(ctx, fn, in)
	if err != nil {
		return err
	}
	n := uint32(len(fn))
	_, err = inst.call(ctx, engine.ExportCall, ptr, n, ptr+n, uint32(len(in)))
	return err
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

// faultyReturn is a guest call that returned, but not as it must: without
// the task's result, or with more output than the cap. The task fails with
// its message as it is; unlike a failed call, it neither breaks the
// instance nor is blamed on the memory cap.
type faultyReturn string

func (e faultyReturn) Error() string { return string(e) }

// asFaulty is errors.As for a faultyReturn. It does not look at a nil err,
// so that a task that ended well allocates nothing: errors.As's target
// escapes to the heap.
func asFaulty(err error) (faultyReturn, bool) {
	if err == nil {
		return "", false
	}
	var f faultyReturn
	ok := errors.As(err, &f)
	return f, ok
}

// finish completes the result of a task that ended at now, and queues it.
// res holds what the guest reported, if anything; err is how its call
// ended. In order:
//   - A call that failed, or whose deadline fired, is classified
//     (timeout, memory_limit or error), and any output is dropped.
//   - A faultyReturn fails the task with its message.
//   - An error the guest reported after the cap refused a grow is a
//     memory_limit: the refused grow is the likely cause.
//
// Then the result gets its end time, the instance's peak memory and the
// task's log.
func (w *worker) finish(inst *instance, res *wire.Result, err error, now time.Time) {
	switch faulty, isFaulty := asFaulty(err); {
	case isFaulty && !inst.timedOut.Load():
		res.Status, res.Error, res.Output = wire.StatusError, faulty.Error(), nil
	case err != nil || inst.timedOut.Load():
		res.Status, res.Error = inst.classify(err, w.curTimeout)
		res.Output = nil
	case res.Status != wire.StatusOK && inst.g.CapHit():
		inst.note("the guest's error: " + res.Error)
		res.Status, res.Error = wire.StatusMemoryLimit, memoryLimitReached(inst.limit)
	}
	res.End = now.UnixNano()
	res.PeakMemory = inst.g.PeakMemory()
	res.Log = inst.log.Bytes()
	w.emitAt(*res, now)
}

// runCommand runs a WASI command module once, in a fresh instance.
func (w *worker) runCommand(t *wire.Task) {
	start := time.Now()
	w.begin(t, start)
	defer w.idle()
	stdout := &capBuffer{max: int(w.cfg.OutputLimit)}
	inst, err := w.newInstance(w.memoryLimit(t), t.Input, stdout)
	if err != nil {
		w.emit(startFailure(t, start, err))
		return
	}
	defer inst.close()
	inst.arm(w.curTimeout)
	_, err = inst.call(w.ctx, engine.ExportStart)
	inst.disarm()
	if code, ok := exitCode(err); ok && code == 0 && !inst.timedOut.Load() {
		err = nil // proc_exit(0) is how a command says it succeeded
	}
	if err == nil && stdout.over {
		err = faultyReturn(fmt.Sprintf("output is over the output cap of %s", formatSize(w.cfg.OutputLimit)))
	}
	res := wire.Result{ID: t.ID, Start: start.UnixNano(), Status: wire.StatusOK, Output: stdout.buf}
	w.finish(inst, &res, err, time.Now())
}
