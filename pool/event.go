package pool

import "time"

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

// emit hands e to Config.OnEvent, Config.Observer and Config.Logger.
// Events that carry their own time (task ends) cost no clock read.
func (p *Pool) emit(e Event) {
	c := &p.cfg
	if c.OnEvent == nil && c.Observer == nil && c.Logger == nil {
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
	// EventNotRun can come from inside MapHandle.Cancel, which OnEvent
	// handlers call, often under a lock of their own: it is not sent there.
	if c.OnEvent != nil && e.Kind != EventNotRun {
		c.OnEvent(e)
	}
}
