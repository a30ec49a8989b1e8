package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// run is one map (or Apply, or stream) in flight. It owns its result
// slots and its killed-task list. Its final results arrive through
// deliver; abort ends it early. It tells its pool what happened only
// through hooks.
type run struct {
	hooks    *runHooks
	tasks    TaskObserver // Config.TaskObserver, told of attempts and final results
	fn       string
	id       uint64        // Event.Map: 1 for the pool's first run
	memLimit int64         // the memory cap its tasks start with
	timeout  time.Duration // its tasks' own timeout (WithTimeout); 0: the pool's
	total    atomic.Int64  // tasks submitted so far (streams grow it)

	// Exactly one of results and out is used: a slice for Map, a channel
	// for streams.
	results []Result
	out     chan Result
	inputs  [][]byte // a Map's inputs, queued as one segment (see entry)

	mu        sync.Mutex
	remaining int64 // submitted tasks without a final result
	sealed    bool  // no more tasks will be submitted
	killed    []KilledTask
	err       error
	// unobserved counts the run's final records queued for the
	// TaskObserver and not yet handed over (see obsBuf). ending is set
	// when the run ended while some were: the hand-over of the last closes
	// done (observed), so that a map's caller finds every final result
	// observed.
	unobserved int
	ending     bool
	shared     *sharedObs // the pool's buffer for outcomes that bring none
	// tc, when the pool counts its tasks in a Tally, is where this run
	// counts them while it is live, under mu (see Tally); nil once the
	// run's counts went to tally's own.
	tally *Tally
	tc    *tallyCounts

	done    chan struct{}
	stopCtx func() bool
	ctx     context.Context // the caller's; host functions run under it

	isDone   atomic.Bool
	nDone    atomic.Int64
	nKilled  atomic.Int64
	nRetried atomic.Int64
}

// runHooks are how runs report to their pool: a killed task for the
// pool's list, an abort whose work in flight must stop, and the end.
type runHooks struct {
	killed func(KilledTask)
	stop   func(*run)
	ended  func(*run)
}

func (p *Pool) newRun(ctx context.Context, fn string, n int, stream chan Result) *run {
	r := &run{hooks: p.hooks, tasks: p.cfg.TaskObserver, shared: &p.sharedObs, fn: fn, memLimit: p.cfg.MemoryLimit, done: make(chan struct{}), out: stream, ctx: ctx}
	if stream == nil {
		r.results = make([]Result, n)
	}
	r.stopCtx = context.AfterFunc(ctx, func() { r.abort(context.Cause(ctx)) })
	if p.tally != nil {
		p.tally.begin(r)
	}
	return r
}

// finished reports whether the run has ended (all results in, or aborted).
func (r *run) finished() bool { return r.isDone.Load() }

// add registers n more tasks.
func (r *run) add(n int) {
	r.mu.Lock()
	r.remaining += int64(n)
	r.mu.Unlock()
	r.total.Add(int64(n))
}

// seal says that no more tasks will be added; the run ends when the last
// result is in.
func (r *run) seal() {
	r.mu.Lock()
	r.sealed = true
	end := r.remaining == 0 && r.err == nil && !r.isDone.Load()
	r.mu.Unlock()
	if end {
		r.end()
	}
}

// deliver records the final result of one task. It reports whether the
// run took it (it had not ended).
func (r *run) deliver(res *Result, dur time.Duration, rec *TaskRecord, ob *obsBuf, more bool) bool {
	return r.deliverOrAbort(res, nil, nil, true, dur, rec, ob, more)
}

// deliverOrAbort records the final result of one task and, when abortErr is
// set, aborts the run with it. Both happen under one lock, so that the
// aborting task's own result cannot end the run first and lose the error
// when that task is the map's last. It reports whether the run took the
// result.
//
// rec, when the pool has a TaskObserver, is the task's record: it is
// queued as Final in ob (see run.queue; more is outcome.more), and counted
// in unobserved, so that the run's done closes only once it was handed
// over; a result the run did not take is observed only when rec says an
// attempt Ended. ended says that res is also an attempt that ended now,
// after dur (-1 when not known), which a Tally counts with the final
// result (see Tally).
func (r *run) deliverOrAbort(res *Result, kt *KilledTask, abortErr error, ended bool, dur time.Duration, rec *TaskRecord, ob *obsBuf, more bool) bool {
	r.mu.Lock()
	if r.isDone.Load() {
		r.mu.Unlock()
		if rec != nil && rec.Ended {
			r.queue(ob, rec, false, false) // the shared buffer has no batch of r's to wait for
		}
		if ended && r.tally != nil {
			r.tally.late(res.Status, dur, res.Stats.PeakMemory)
		}
		return false
	}
	if tc := r.tc; tc != nil {
		if ended {
			tc.attempt(r.tally, res.Status, dur, res.Stats.PeakMemory)
		}
		tc.status[tallySlot(res.Status)].tasks++
	}
	if abortErr != nil && r.err == nil {
		r.err = abortErr
	}
	if kt != nil {
		r.killed = append(r.killed, *kt)
		r.nKilled.Add(1)
	}
	if r.results != nil {
		r.results[res.Index] = *res
	}
	if r.out != nil {
		// Streams bound their outstanding tasks to the channel's capacity,
		// so this never blocks. It is sent under mu, so that every result
		// accepted before the run ended is in the channel by the time done
		// is closed: a stream yields them all before the error.
		r.out <- *res
	}
	r.remaining--
	end := (r.remaining == 0 && r.sealed) || abortErr != nil
	if rec != nil {
		rec.Final = true
		r.unobserved++
	}
	r.mu.Unlock()
	if rec != nil {
		r.queue(ob, rec, more, end)
	}
	r.nDone.Add(1)
	if kt != nil {
		r.hooks.killed(*kt)
	}
	if end {
		r.end()
	}
	if abortErr != nil {
		r.hooks.stop(r)
	}
	return true
}

// observe queues rec, an attempt's end that is not its task's final
// result, in ob (see run.queue).
func (r *run) observe(rec TaskRecord, ob *obsBuf, more bool) {
	r.queue(ob, &rec, more, false)
}

func (r *run) end() {
	r.mu.Lock()
	if r.isDone.Swap(true) {
		r.mu.Unlock()
		return
	}
	if r.err != nil && r.results != nil {
		why := notRunReason(r.err)
		for i := range r.results {
			if r.results[i].Status == 0 {
				r.results[i] = Result{Index: i, Status: StatusNotRun, Error: why}
			}
		}
	}
	// No final record is queued after this. Those queued in a
	// dispatcher's buffer are handed over with the rest of their answer,
	// and the last hand-over closes done; those in the shared buffer are
	// handed over now.
	wait := r.unobserved > 0
	r.ending = wait
	r.mu.Unlock()
	r.stopCtx()
	if wait {
		r.flushObs(nil)
		return
	}
	r.finish()
}

// finish closes done and tells the pool that the run ended: at its end,
// or after it, when its last final record queued is handed over.
func (r *run) finish() {
	close(r.done)
	r.hooks.ended(r)
}

// abort ends the run with err, drops its queued tasks and stops the workers
// running its tasks. The first abort wins.
func (r *run) abort(err error) {
	r.mu.Lock()
	if r.isDone.Load() {
		r.mu.Unlock()
		return
	}
	if r.err == nil { // a task's abort, set before the run ended, stands
		r.err = err
	}
	r.mu.Unlock()
	r.end()
	r.hooks.stop(r)
}

// MapHandle is a map in flight, returned by MapAsync. Its methods are safe
// for concurrent use.
type MapHandle struct{ r *run }

// ID is the map's number in its pool, which its task events carry as
// Event.Map: 1 for the pool's first map, 2 for its second, and so on.
func (m *MapHandle) ID() uint64 { return m.r.id }

// Done is closed when the map has ended.
func (m *MapHandle) Done() <-chan struct{} { return m.r.done }

// Wait waits for the map to end and returns its results in input order.
// When the map was aborted it returns the error (a *TaskError, ctx.Err()
// of the map's context, ErrClosed or a *StartError) and every slot: those
// that finished have their results, the others StatusNotRun and an Error
// that says why. If ctx is done first, Wait
// returns ctx.Err() and the map goes on.
func (m *MapHandle) Wait(ctx context.Context) ([]Result, error) {
	select {
	case <-m.r.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	return m.r.results, m.r.err
}

// Cancel aborts the map with context.Canceled. Its queued tasks are dropped
// and the workers running its tasks are stopped; the pool stays usable.
func (m *MapHandle) Cancel() { m.r.abort(context.Canceled) }

// Progress counts a map's tasks.
type Progress struct {
	Total   int // tasks in the map
	Done    int // tasks with a final result
	Killed  int // final results with a killed status
	Retried int // retries scheduled so far
}

// Progress returns the map's counters. It is cheap and may be called often.
func (m *MapHandle) Progress() Progress {
	return Progress{
		Total:   int(m.r.total.Load()),
		Done:    int(m.r.nDone.Load()),
		Killed:  int(m.r.nKilled.Load()),
		Retried: int(m.r.nRetried.Load()),
	}
}

// KilledTasks lists this map's killed tasks so far, in the order their
// final results came in.
func (m *MapHandle) KilledTasks() []KilledTask {
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	return append([]KilledTask(nil), m.r.killed...)
}

// notRunReason is the Error of a task that has no result because its map
// ended with err.
func notRunReason(err error) string {
	var te *TaskError
	var se *StartError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("not run: the map was aborted by task %d (%s)", te.Index, te.Status)
	case errors.Is(err, context.Canceled):
		return "not run: the map was canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "not run: the map's deadline passed"
	case errors.Is(err, ErrClosed):
		return "not run: the pool was terminated"
	case errors.As(err, &se):
		return "not run: workers could not be kept up (" + se.What + ")"
	}
	return "not run: " + firstLine(err.Error())
}
