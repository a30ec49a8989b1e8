package sandbox

import (
	"context"
	"errors"
	"slices"

	"github.com/safepool/safepool/internal/engine"
)

// With FreshInstance each task starts from the state an instance had right
// after its start-up. On an engine that can reset an instance
// (engine.Resetter) the worker keeps one instance, snapshot after the
// start-up, and resets it to the snapshot after each task; otherwise it
// makes a new instance for each task.
//
// The reset is left pending when a task ends and done once the batch's
// results are sent (settle), so that a lone task's result does not wait
// for it: the host has its answer while the worker resets. A task that
// finds a reset pending, the next of the same batch, does it first
// (instanceFor).

// writeTracker is an engine that can have the kernel track the pages a
// task writes, so that a reset finds them for less (the wazero engine,
// internal/engine/wazero/wptrack.go). Tracking needs a userfaultfd, which
// the worker's seccomp filter denies: it is opened before the filter.
type writeTracker interface{ OpenWriteTracking() bool }

// prepareReset opens what a FreshInstance worker's resets need before the
// worker is confined.
func (w *worker) prepareReset(eng engine.Engine) {
	if t, ok := eng.(writeTracker); ok && w.cfg.FreshInstance {
		t.OpenWriteTracking()
	}
}

// instanceFor returns the warm instance, reset first if a reset is
// pending, if it fits the task's cap, or a new one.
func (w *worker) instanceFor(limit uint64) (*instance, error) {
	w.resetPending()
	if w.inst != nil && (w.inst.broken || w.inst.limit != limit) {
		w.inst.close()
		w.inst = nil
	}
	if w.inst != nil {
		return w.inst, nil
	}
	inst, err := w.newSDKInstance(limit)
	if err != nil {
		return nil, err
	}
	w.inst = inst
	return inst, nil
}

// newSDKInstance starts an instance of an SDK module. With FreshInstance,
// on an engine that can reset instances, it runs the handshake's calls on
// it, as on the worker's first instance, and snapshots it
// (snapshotForReset).
func (w *worker) newSDKInstance(limit uint64) (*instance, error) {
	inst, err := w.newInstance(limit, nil, nil)
	if err != nil || !w.cfg.FreshInstance {
		return inst, err
	}
	if _, ok := inst.g.(engine.Resetter); !ok {
		return inst, nil // the engine cannot reset: no snapshot to take
	}
	handlers, err := w.handshakeSDK(inst)
	if err != nil {
		inst.close()
		return nil, err
	}
	return w.snapshotForReset(inst, handlers)
}

// snapshotForReset snapshots an instance of a FreshInstance worker after
// its start-up and the handshake's calls (which reported handlers), before
// any task, so that after each task it can be reset to that state
// (afterTask) instead of being made anew. Every instance of the worker is
// snapshot at the same point: a task sees the same state whichever
// instance runs it. An instance the engine cannot snapshot has no
// resetter, and is made anew for every task.
//
// Before the snapshot the instance is warmed up (warmUp), so that the
// snapshot holds a runtime that has been through a call once: a Go
// guest's first safepool_call after its start-up costs several times a
// later one (its allocator's and scheduler's first use), and every task
// on a reset instance would otherwise pay that again. An instance whose
// warm-up may have run a handler is thrown away, and a new one is
// snapshot without it. It returns the instance to keep, or why none
// could be made.
func (w *worker) snapshotForReset(inst *instance, handlers []string) (*instance, error) {
	r, ok := inst.g.(engine.Resetter)
	if !ok {
		return inst, nil
	}
	// A module with a handler named "" cannot be warmed up: the call would
	// run it.
	if !slices.Contains(handlers, "") && !inst.warmUp(w.ctx) {
		inst.close()
		var err error
		if inst, err = w.newInstance(inst.limit, nil, nil); err != nil {
			return nil, err
		}
		if _, err := w.handshakeSDK(inst); err != nil {
			inst.close()
			return nil, err
		}
		r = inst.g.(engine.Resetter)
	}
	if r.Snapshot() == nil {
		inst.resetter = r
	}
	return inst, nil
}

// errWarmUp is a warm-up call that did not end as an unknown handler's.
var errWarmUp = errors.New("the warm-up call did not report an unknown function")

// warmUp runs safepool_call once on the empty name, which no handler has,
// under the start-up deadline, and reports whether the guest answered as
// the ABI says it must: one result with status 2 (unknown function), no
// trap, no refused grow. Then no handler ran, and the instance's state is
// still the start-up's as far as any task can tell. It forgets the call's
// log.
func (inst *instance) warmUp(ctx context.Context) bool {
	status, results := uint32(0), 0
	inst.sink = func(s uint32, _ []byte) { status, results = s, results+1 }
	defer func() { inst.sink = nil }()
	err := errWarmUp
	if ptr, aerr := inst.startCall(ctx, engine.ExportAlloc, 0); aerr == nil {
		_, err = inst.startCall(ctx, engine.ExportCall, ptr, 0, ptr, 0)
	}
	ok := err == nil && results == 1 && status == 2 && !inst.broken && !inst.g.CapHit()
	inst.reset()
	return ok
}

// afterTask throws the instance away when it is broken, and with
// FreshInstance leaves its reset pending (resetPending).
func (w *worker) afterTask() {
	if w.inst == nil {
		return
	}
	if w.inst.broken {
		w.inst.close()
		w.inst = nil
		return
	}
	w.mustReset = w.cfg.FreshInstance
}

// resetPending does a pending reset: it resets the instance to its state
// before its first call, or throws it away when it cannot be reset.
func (w *worker) resetPending() {
	if !w.mustReset {
		return
	}
	w.mustReset = false
	if w.inst != nil && !w.inst.resetToStart() {
		w.inst.close()
		w.inst = nil
	}
}
