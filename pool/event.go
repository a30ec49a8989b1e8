package pool

import (
	"context"
	"time"
)

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// EventTaskStart: a worker started running a task.
	EventTaskStart EventKind = iota + 1
	// EventTaskEnd: an attempt of a task ended (Status says how).
	EventTaskEnd
	// EventWorkerStart: a worker process finished its handshake.
	EventWorkerStart
	// EventWorkerExit: a worker process ended (Reason says how).
	EventWorkerExit
	// EventSparePromoted: a spare worker (Config.Spares) took the place of
	// one that died or was recycled; the pool is at full strength again.
	EventSparePromoted
	// EventWarning: the pool noticed something that costs speed, not
	// correctness (Reason says what); see Pool.Warnings.
	EventWarning
	// EventTaskFinal: a task's final result (Status, Policy) was
	// delivered to its map, after its last attempt's EventTaskEnd. A
	// result that comes after its map ended is dropped, with no event.
	EventTaskFinal
	// EventRetry: an attempt failed and the task runs again (Status and
	// Reason are the failed attempt's; Attempt counts the attempts so far).
	EventRetry
	// EventNotRun: a map ended before Count of its tasks had a result;
	// they have status not_run. It goes to Config.Observer and
	// Config.Logger only, never to OnEvent: it can be sent from inside
	// MapHandle.Cancel, which an OnEvent handler may call.
	EventNotRun
	// EventBreakerTrip: workers could not be kept up and the start-up
	// breaker ended the maps waiting for them (Reason says why).
	EventBreakerTrip
)

func (k EventKind) String() string {
	switch k {
	case EventTaskStart:
		return "task_start"
	case EventTaskEnd:
		return "task_end"
	case EventWorkerStart:
		return "worker_start"
	case EventWorkerExit:
		return "worker_exit"
	case EventSparePromoted:
		return "spare_promoted"
	case EventWarning:
		return "warning"
	case EventTaskFinal:
		return "task_final"
	case EventRetry:
		return "retry"
	case EventNotRun:
		return "not_run"
	case EventBreakerTrip:
		return "breaker_trip"
	}
	return "event"
}

// Event is something that happened in the pool. Delivered to
// Config.OnEvent.
type Event struct {
	Kind      EventKind
	Time      time.Time
	WorkerPID int
	// Task events only.
	Index   int
	Func    string
	Attempt int    // 1 for the first run
	Status  Status // EventTaskEnd, EventTaskFinal and EventRetry
	// Reason says how a worker ended (EventWorkerExit) or why a task failed
	// (EventTaskEnd).
	Reason string
	// Agent and Host name the cluster agent a task event happened on, and
	// its machine; empty for a local pool.
	Agent, Host string
	// Map numbers the map a task event (task start, end, final, retry
	// and not run) belongs to: 1 for the pool's first Map, MapAsync,
	// Imap, ImapUnordered or Apply call, 2 for its second, and so on (a
	// MapAsync's is its handle's ID). It is 0 for other events, and for the events of a cluster agent's
	// Observer (an agent runs other pools' maps).
	Map uint64
	ctx context.Context // the map's (see Context)

	job *job // the task of a task start, for a cluster agent
	// Stats are the attempt's (EventTaskEnd, EventTaskFinal).
	Stats Stats
	// Policy is the policy that made a failed result final
	// (EventTaskFinal): Skip, Abort, or Retry when no retry was left.
	Policy Policy
	// Cause says why a worker ended (EventWorkerExit): "killed" (a signal
	// from outside the pool), "exited" (by itself, unexpectedly), "hung"
	// (the pool killed it past a task's timeout), "stopped" (the pool
	// killed it to stop an aborted map, or Terminate), "retired" (the
	// pool stopped it gracefully) or "start_failed".
	Cause string
	// Signal is the signal that ended the worker, such as "SIGKILL"
	// (EventWorkerExit).
	Signal string
	// Count is how many tasks an EventNotRun covers.
	Count int
}

// Context returns the context that the map of a task event was called
// with, so that a tracer can hang an attempt's span under the caller's
// span (package github.com/safepool/safepool/tracing does), or a logger
// read the caller's values. It is context.Background() for other events.
func (e Event) Context() context.Context {
	if e.ctx == nil {
		return context.Background()
	}
	return e.ctx
}

// TaskObserver is a cheaper Config.Observer, for a metrics collector
// (package github.com/safepool/safepool/metrics has one). It receives the
// same events as an Observer, but attempts' ends and tasks' final results
// come to ObserveTasks as TaskRecords, a few words each, in place of the
// EventTaskEnd and EventTaskFinal events, and a batch at a time: the pool
// builds no Event per task for it, and calls it once for all the results
// that one answer of a worker brought (at most 128 records in a call).
// Each worker's records are queued apart from the others', so that
// observing takes no lock that the workers' results share: it costs the
// pool a few tens of nanoseconds per task. A TaskObserver that only
// counts is cheaper still as a Tallier, whose tasks the pool counts in its
// Tally and does not hand over at all.
//
// Its methods are called from the pool's goroutines, sometimes from inside
// a call to the pool (such as MapHandle.Cancel): they must return quickly
// and must not call the pool. A map's Wait returns only once its records
// were handed over, so an ObserveTasks that blocks holds up the maps whose
// results it is told of.
type TaskObserver interface {
	// ObserveTasks is told of attempts' ends and tasks' final results. A
	// task's records come in the order its attempts ended; the records of
	// tasks that different workers ran may come in any order. The slice
	// is the pool's, valid only during the call: keep what it says, not
	// it.
	//
	// A record is handed over at the latest when the batch of results it
	// came in was settled, and a map's final results before the map can
	// end with them: once Map (or MapHandle.Wait) returns, every final
	// result of the map was observed.
	ObserveTasks([]TaskRecord)
	// Observe receives every other event an Observer would: all but
	// EventTaskStart, EventTaskEnd and EventTaskFinal.
	Observe(Event)
}

// TaskRecord is what a TaskObserver is told of a task: an attempt that
// ended, the task's final result, or both at once (a result delivered as
// final as soon as its attempt ended, such as every ok one).
type TaskRecord struct {
	// Ended: an attempt ended, with Status, Duration and PeakMemory
	// (EventTaskEnd).
	Ended bool
	// Final: the task's final result, with Status, was delivered to its
	// map (EventTaskFinal). A result that comes after its map ended is not
	// final.
	Final  bool
	Status Status
	// Policy is the policy that made a failed result final: Skip, Abort,
	// or Retry when no retry was left. Zero for ok, and when not Final.
	Policy Policy
	// Attempt counts the task's attempts so far, 1 for the first.
	Attempt   int
	Index     int
	WorkerPID int
	// Duration is the ended attempt's, from the worker's start of the
	// task to its end; -1 when it is not known (not Ended, or the worker
	// died before it said when the task started).
	Duration time.Duration
	// PeakMemory is the ended attempt's peak linear memory, in bytes; 0
	// when not known.
	PeakMemory int64
}

// taskRecord is the record of an attempt that ended with res after dur.
func taskRecord(j *job, res *Result, dur time.Duration) TaskRecord {
	var t TaskRecord
	fillRecord(&t, j, res, dur)
	return t
}

// fillRecord makes *t the record of an attempt that ended with res after
// dur (see outcome.duration). It
// sets every field, one by one: assigning a composite literal builds the
// record on the stack and copies it, and the copy's wide loads wait for
// the narrow stores that built it (a failed store-to-load forwarding),
// which cost more than the rest of an observed task's record.
func fillRecord(t *TaskRecord, j *job, res *Result, dur time.Duration) {
	t.Ended, t.Final = true, false
	t.Status, t.Policy = res.Status, 0
	t.Attempt, t.Index, t.WorkerPID = j.attempts, j.index, res.Stats.WorkerPID
	t.Duration = dur
	t.PeakMemory = res.Stats.PeakMemory
}

// attemptDuration is End - Start, or -1 when either is not known. It
// subtracts the nanoseconds since the epoch, which costs a tenth of
// time.Time.Sub, whose check for overflow is most of what an observed task
// cost the pool: the times are the worker's wall clock, well inside the
// years UnixNano covers.
func attemptDuration(s *Stats) time.Duration {
	if s.Start.IsZero() || s.End.IsZero() {
		return -1
	}
	return time.Duration(max(s.End.UnixNano()-s.Start.UnixNano(), 0))
}

// records reports whether the TaskObserver is told of tasks as
// TaskRecords: it is set, and not a Tallier, whose tasks the pool counts
// in its Tally instead.
func (p *Pool) records() bool {
	return p.cfg.TaskObserver != nil && p.tally == nil
}

// taskEvents reports whether task ends and finals go out as Events: to
// OnEvent, Observer or Logger. A TaskObserver alone costs no Event per task.
func (p *Pool) taskEvents() bool {
	c := &p.cfg
	return c.OnEvent != nil || c.Observer != nil || c.Logger != nil
}

// emit hands e to Config.OnEvent, Config.Observer, Config.TaskObserver
// (but task ends and finals, which it is told of as TaskRecords) and
// Config.Logger. Events that carry their own time (task ends) cost no
// clock read.
func (p *Pool) emit(e Event) {
	c := &p.cfg
	if !p.taskEvents() && c.TaskObserver == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if c.Logger != nil {
		p.log(e)
	}
	if c.Observer != nil && e.Kind != EventTaskStart {
		c.Observer(e)
	}
	if c.TaskObserver != nil {
		switch e.Kind {
		case EventTaskStart, EventTaskEnd, EventTaskFinal:
		default:
			c.TaskObserver.Observe(e)
		}
	}
	// EventNotRun can come from inside MapHandle.Cancel, which OnEvent
	// handlers call, often under a lock of their own: it is not sent there.
	if c.OnEvent != nil && e.Kind != EventNotRun {
		c.OnEvent(e)
	}
}
