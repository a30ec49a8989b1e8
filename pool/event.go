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
	Status  Status // EventTaskEnd only
	// Reason says how a worker ended (EventWorkerExit) or why a task failed
	// (EventTaskEnd).
	Reason string
	// Agent and Host name the cluster agent a task event happened on, and
	// its machine; empty for a local pool.
	Agent, Host string

	job *job // the task of a task start, for a cluster agent
}

func (p *Pool) emit(e Event) {
	if p.cfg.OnEvent != nil {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		p.cfg.OnEvent(e)
	}
}
