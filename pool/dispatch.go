package pool

import (
	"context"
	"time"

	"github.com/safepool/safepool/module"
)

// The dispatch seam. The pool keeps jobs waiting in its queue; a
// dispatcher takes them, runs each as an attempt somewhere, and hands the
// attempt's outcome to the pool's sink, exactly once per attempt, where
// the policy decides what happens next (Pool.settle). The local dispatcher
// (local.go) runs attempts in worker processes over pipes; another
// transport runs them elsewhere and reports the same outcomes.

// dispatcher runs the pool's jobs and reports their outcomes to the sink it
// was made with. Its methods are safe for concurrent use.
type dispatcher interface {
	// waitReady waits until tasks can run, or fails with why they cannot
	// (the module's own failure, a *StartError, ctx's cause). It returns
	// what the module is, from the first worker's handshake.
	waitReady(ctx context.Context) (module.Kind, []string, error)
	// err returns the open breaker's *StartError, or nil when maps can run.
	err() error
	// stopRun stops the attempts of an aborted run in flight; their
	// outcomes are dropped by the pool.
	stopRun(r *run)
	// close stops the dispatcher, at once with kill, and waits for it.
	close(kill bool)
}

var _ dispatcher = (*local)(nil)

// outcome is how one attempt of a job ended.
type outcome struct {
	job *job
	res Result // Index, Status, Output, Error, Log and Stats of the attempt
	// death is set when the attempt ended because its worker died: the
	// status is then StatusKilled, or StatusTimeout for a hung worker.
	death *death
	// final ends the task with res whatever the policy: the failure is
	// not the task's and a retry cannot help (an input too large for the
	// cluster, every agent refusing it).
	final bool
	// gateFailed says why the memory gate, checked on the cluster agent
	// that was to run the retry, gave up: the attempt did not run, and the
	// task keeps its last status.
	gateFailed string
	// obs, when set, is the dispatcher's buffer for the TaskObserver's
	// records, which only the goroutine that hands the sink this outcome
	// uses: it hands the buffer over (obsBuf.flush) once it has given the
	// sink all the outcomes of the answer. Without it, records go to the
	// pool's shared buffer.
	obs *obsBuf
	// more says that the dispatcher hands the sink more outcomes of the
	// same run next, from the same answer: without obs, the TaskObserver
	// is told of them together, after the last. With obs it is not read:
	// the buffer is handed over after the answer anyway.
	more bool
	// dur is the attempt's duration, when durKnown: a dispatcher that has
	// the worker's start and end as numbers subtracts them, which costs
	// less than subtracting the times in res.Stats (see duration).
	dur      time.Duration
	durKnown bool
}

// duration is the attempt's duration: End - Start, or -1 when either is
// not known.
func (o *outcome) duration() time.Duration {
	if o.durKnown {
		return o.dur
	}
	return attemptDuration(&o.res.Stats)
}

// death says how a worker's death ended an attempt.
type death struct {
	// Signal is the signal that killed the worker, such as "SIGKILL", or
	// "" when it exited by itself.
	Signal string
	// ExitCode is the worker's exit code when it exited by itself, else -1.
	ExitCode int
	// Hung is set when the pool killed the worker because it stopped
	// answering past the task's deadline.
	Hung bool
}
