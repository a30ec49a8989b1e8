package sandbox

import (
	"context"
	"encoding/binary"
	"runtime/trace"
	"time"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/internal/wire"
)

// runBatch runs tasks through one safepool_batch call and returns how many
// it finished. On a trap the task that was running gets the failure and the
// rest are left to the caller, which runs them on a new instance.
func (w *worker) runBatch(tasks []wire.Task) int {
	start := time.Now()
	w.begin(&tasks[0], start)
	defer w.idle()
	inst, err := w.instanceFor(w.memoryLimit(&tasks[0]))
	if err != nil {
		w.emit(startFailure(&tasks[0], start, err))
		return 1
	}
	inst.arm(w.curTimeout)
	ptr, size, ok := inst.putRecords(w.ctx, tasks)
	if !ok {
		inst.disarm()
		return w.batchFallback(tasks, inst)
	}
	b := &batchRun{w: w, inst: inst, tasks: tasks}
	b.start(start)
	inst.sink = b.result
	region := trace.StartRegion(w.ctx, "guest")
	_, err = inst.call(w.ctx, engine.ExportBatch, ptr, size)
	region.End()
	inst.disarm()
	inst.sink = nil
	b.settle(err)
	w.afterTask()
	return b.i
}

// batchRun is one safepool_batch call in progress: the task the guest is
// on, and that task's result so far.
type batchRun struct {
	w     *worker
	inst  *instance
	tasks []wire.Task
	i     int         // the task the guest is on; len(tasks) once all are done
	cur   wire.Result // its result so far
}

// start begins the result of the current task, which started at now, and
// forgets the last task's log and cap hit.
func (b *batchRun) start(now time.Time) {
	b.inst.reset()
	b.cur = wire.Result{ID: b.tasks[b.i].ID, Start: now.UnixNano()}
}

// result is the instance's sink during the call: the guest's result ends
// the current task, and the next one starts at once, under a deadline of
// its own.
func (b *batchRun) result(status uint32, out []byte) {
	if b.i >= len(b.tasks) {
		panic("safepool.result called more times than the batch has tasks")
	}
	if b.inst.timedOut.Load() { // too late: fail the call, so that this task, not the next, is the timeout
		panic("safepool.result called after the task's deadline")
	}
	b.w.fill(b.inst, &b.cur, status, out)
	now := time.Now()
	b.w.finish(b.inst, &b.cur, nil, now)
	b.i++
	if b.i < len(b.tasks) {
		b.start(now)
		b.w.begin(&b.tasks[b.i], now)
		b.inst.armAt(now, b.w.curTimeout)
	}
}

// settle ends the batch once the call has returned with err. A failure
// goes to the task the guest was on; a guest that returned before giving
// every result fails the task it was on. Either way the tasks after it are
// left to the caller. A failure after the last result breaks the instance,
// and the results stand.
func (b *batchRun) settle(err error) {
	switch {
	case b.i == len(b.tasks):
		if err != nil {
			b.inst.broken = true
		}
		return
	case err == nil:
		err = faultyReturn("guest returned no result (safepool_batch must call safepool.result once per record)")
	}
	b.w.finish(b.inst, &b.cur, err, time.Now())
	b.i++
}

// putRecords writes the batch's records into guest memory, each task as
// u32 fn_len, fn, u32 in_len, in, and returns where they are and their
// size. It reports false when the guest could not take them: its
// safepool_alloc failed (usually on a grow the cap refused), returned 0 or
// pointed outside its memory.
func (inst *instance) putRecords(ctx context.Context, tasks []wire.Task) (ptr, size uint32, ok bool) {
	n := 0
	for i := range tasks {
		n += 8 + len(tasks[i].Func) + len(tasks[i].Input)
	}
	ptr, err := inst.call(ctx, engine.ExportAlloc, uint32(n))
	if err != nil || ptr == 0 {
		return 0, 0, false
	}
	buf, ok := inst.g.Memory(ptr, uint32(n))
	if !ok {
		return 0, 0, false
	}
	off := 0
	for i := range tasks {
		off += putRecord(buf[off:], tasks[i].Func)
		off += putRecord(buf[off:], string(tasks[i].Input))
	}
	return ptr, uint32(n), true
}

func putRecord(b []byte, s string) int {
	binary.LittleEndian.PutUint32(b, uint32(len(s)))
	copy(b[4:], s)
	return 4 + len(s)
}

// batchFallback handles a batch that could not be written into the guest:
// it throws the instance away and runs the first task alone, on a new
// instance, where a cap hit is reported as that task's memory_limit. Why
// the batch could not be written is not reported: it belongs to no task,
// and if it is the first task's own doing, running it alone meets it again.
func (w *worker) batchFallback(tasks []wire.Task, inst *instance) int {
	inst.broken = true
	w.afterTask()
	w.idle()
	w.runSDK(&tasks[0])
	return 1
}
