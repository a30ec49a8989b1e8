package pool

import (
	"errors"
	"log/slog"

	"github.com/safepool/safepool/internal/hostconn"
)

// The pool's observable decisions: the events that say a task is final,
// runs again or never ran, that the breaker opened, and the structured
// log records (Config.Logger) made from every event. The call sites are
// one line each; what is said, and at which level, is here.

// noteFinal reports a task's final result; policy is the one that made a
// failed result final (zero for ok). Its callers check p.taskEvents()
// first, so that a pool that emits no task events (none, or only a
// TaskObserver, listens) pays a check per task, with no call and no copy
// of the Result.
func (p *Pool) noteFinal(j *job, res *Result, policy Policy) {
	p.emit(Event{Kind: EventTaskFinal, Time: res.Stats.End, WorkerPID: res.Stats.WorkerPID, Index: j.index, Func: j.run.fn,
		Attempt: j.attempts, Status: res.Status, Reason: res.Error, Stats: res.Stats, Policy: policy,
		Agent: res.Stats.Agent, Host: res.Stats.Host, Map: j.run.id, ctx: j.run.ctx})
}

// noteRetry reports that j's failed attempt res runs again.
func (p *Pool) noteRetry(j *job, res Result) {
	p.emit(Event{Kind: EventRetry, WorkerPID: res.Stats.WorkerPID, Index: j.index, Func: j.run.fn,
		Attempt: j.attempts, Status: res.Status, Reason: res.Error,
		Agent: res.Stats.Agent, Host: res.Stats.Host, Map: j.run.id, ctx: j.run.ctx})
}

// noteTrip reports a breaker that opened; err is what failAll ends the
// runs with, which is a *StartError only then.
func (p *Pool) noteTrip(err error) {
	var se *StartError
	if errors.As(err, &se) {
		p.emit(Event{Kind: EventBreakerTrip, Reason: se.Error()})
	}
}

// noteNotRun reports the tasks of an ended run that have no result, and
// returns how many.
func (p *Pool) noteNotRun(r *run) int64 {
	r.mu.Lock()
	n := r.remaining
	r.mu.Unlock()
	if n > 0 {
		p.emit(Event{Kind: EventNotRun, Func: r.fn, Count: int(n), Map: r.id, ctx: r.ctx})
	}
	return n
}

// finalPolicy is the policy that made a failed result final.
func finalPolicy(p Policy, abortErr error) Policy {
	if abortErr != nil {
		return Abort
	}
	return p
}

// deathCause is Event.Cause for a worker that ended with exit.
func deathCause(exit hostconn.Exit, hung, stopped bool) string {
	switch {
	case hung:
		return "hung"
	case stopped:
		return "stopped"
	case exit.Signaled():
		return "killed"
	}
	return "exited"
}

// startSignal is Event.Signal for a start-up that failed: a kill from
// outside is a SIGKILL (hostconn.ErrKilledAtStart).
func startSignal(outside bool) string {
	if outside {
		return "SIGKILL"
	}
	return ""
}

// log writes e to Config.Logger at the level it deserves: debug for the
// routine (a task's start and success, a worker retired), info for the
// pool's own recoveries (a worker started, a retry), warn for what cost a
// task or a worker, and error for what ended a map. A task's record is
// logged under its map's context (Event.Context), so that a handler can
// read the caller's values from it, such as the span a trace bridge puts
// there.
func (p *Pool) log(e Event) {
	lg := p.cfg.Logger
	level, msg := logLevel(e)
	ctx := e.Context()
	if !lg.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 8)
	if e.WorkerPID != 0 {
		attrs = append(attrs, slog.Int("worker_pid", e.WorkerPID))
	}
	switch e.Kind {
	case EventTaskStart, EventTaskEnd, EventTaskFinal, EventRetry:
		attrs = append(attrs, slog.Uint64("map", e.Map), slog.Int("index", e.Index), slog.String("func", e.Func), slog.Int("attempt", e.Attempt))
	}
	switch e.Kind {
	case EventTaskEnd, EventTaskFinal, EventRetry:
		attrs = append(attrs, slog.String("status", e.Status.String()))
	}
	if e.Kind == EventTaskFinal && e.Status != StatusOK {
		attrs = append(attrs, slog.String("policy", e.Policy.String()))
	}
	if e.Kind == EventWorkerExit {
		attrs = append(attrs, slog.String("cause", e.Cause))
		if e.Signal != "" {
			attrs = append(attrs, slog.String("signal", e.Signal))
		}
	}
	if e.Kind == EventNotRun {
		attrs = append(attrs, slog.Uint64("map", e.Map), slog.String("func", e.Func), slog.Int("count", e.Count))
	}
	if e.Reason != "" {
		attrs = append(attrs, slog.String("reason", firstLine(e.Reason)))
	}
	lg.LogAttrs(ctx, level, msg, attrs...)
}

// logLevel is the level and message of e's record.
func logLevel(e Event) (slog.Level, string) {
	switch e.Kind {
	case EventTaskStart:
		return slog.LevelDebug, "task started"
	case EventTaskEnd:
		if e.Status == StatusOK {
			return slog.LevelDebug, "attempt succeeded"
		}
		return slog.LevelWarn, "attempt failed"
	case EventTaskFinal:
		switch {
		case e.Status == StatusOK:
			return slog.LevelDebug, "task done"
		case e.Policy == Abort:
			return slog.LevelError, "task aborted its map"
		case e.Policy == Retry:
			return slog.LevelWarn, "task gave up"
		}
		return slog.LevelWarn, "task skipped"
	case EventRetry:
		return slog.LevelInfo, "task will be retried"
	case EventWorkerStart:
		return slog.LevelInfo, "worker started"
	case EventWorkerExit:
		switch e.Cause {
		case "retired", "stopped":
			return slog.LevelDebug, "worker ended"
		}
		return slog.LevelWarn, "worker died"
	case EventSparePromoted:
		return slog.LevelInfo, "spare worker promoted"
	case EventWarning:
		return slog.LevelWarn, "pool warning"
	case EventNotRun:
		return slog.LevelWarn, "tasks not run"
	case EventBreakerTrip:
		return slog.LevelError, "start-up breaker opened"
	}
	return slog.LevelInfo, e.Kind.String()
}
