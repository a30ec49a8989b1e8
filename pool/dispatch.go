package pool

// The dispatch seam. The pool keeps jobs waiting in its queue; a
// dispatcher takes them, runs each as an attempt somewhere, and hands the
// attempt's outcome to the pool's sink, exactly once per attempt, where
// the policy decides what happens next (Pool.settle). The local dispatcher
// (local.go) runs attempts in worker processes over pipes; another
// transport runs them elsewhere and reports the same outcomes.

// outcome is how one attempt of a job ended.
type outcome struct {
	job *job
	res Result // Index, Status, Output, Error, Log and Stats of the attempt
	// death is set when the attempt ended because its worker died: the
	// status is then StatusKilled, or StatusTimeout for a hung worker.
	death *death
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
