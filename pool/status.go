package pool

import (
	"errors"
	"fmt"
	"time"

	"github.com/safepool/safepool/internal/hostconn"
	"github.com/safepool/safepool/internal/wire"
)

// Status is how a task ended.
type Status uint8

// Task statuses. Killed, MemoryLimit and Timeout are "killed tasks": they
// take the pool's kill policy.
const (
	// StatusOK means the task returned its output.
	StatusOK = Status(wire.StatusOK)
	// StatusError means the guest returned an error, panicked or trapped.
	// The worker is fine.
	StatusError = Status(wire.StatusError)
	// StatusKilled means the worker process died while running the task: a
	// signal (SIGKILL from the OOM killer or a person) or any other
	// unexpected exit.
	StatusKilled = Status(wire.StatusKilled)
	// StatusMemoryLimit means the task hit its linear-memory cap.
	StatusMemoryLimit = Status(wire.StatusMemoryLimit)
	// StatusTimeout means the task ran past its deadline and was stopped.
	StatusTimeout = Status(wire.StatusTimeout)
	// StatusNotRun means the task has no result of its own: its map ended
	// (an abort, a cancel, Terminate, or workers that could not be kept
	// up) before the task finished, or the call was refused before any
	// task ran. Its Error says which. It is not a killed-task status: the
	// task takes no policy and is not in the killed-task list.
	StatusNotRun Status = 16
)

var statusNames = map[Status]string{
	StatusOK: "ok", StatusError: "error", StatusKilled: "killed",
	StatusMemoryLimit: "memory_limit", StatusTimeout: "timeout", StatusNotRun: "not_run",
}

// String returns the status's name: "ok", "error", "killed", "memory_limit",
// "timeout" or "not_run".
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// MarshalText encodes the status as its name.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a status name.
func (s *Status) UnmarshalText(b []byte) error {
	for k, v := range statusNames {
		if v == string(b) {
			*s = k
			return nil
		}
	}
	return fmt.Errorf("pool: unknown status %q", b)
}

// IsKilledTask reports whether s is one of the killed-task statuses:
// killed, memory_limit or timeout. Those take the kill policy and go to the
// killed-task list; StatusKilled alone means the worker died.
func (s Status) IsKilledTask() bool {
	return s == StatusKilled || s == StatusMemoryLimit || s == StatusTimeout
}

// Result is the outcome of one task.
type Result struct {
	// Index is the task's position in the input.
	Index int
	// Status says how the task ended.
	Status Status
	// Output is the task's output; nil unless Status is StatusOK.
	Output []byte
	// Error describes the failure; empty when Status is StatusOK.
	Error string
	// Attempts is how many times the task ran (1 without retries).
	Attempts int
	// Stats describe the last attempt.
	Stats Stats
	// Failed lists the attempts that did not succeed, in order, the last
	// included when it failed: nil for a task whose first attempt was its
	// last and succeeded. Attempts before the last are those the Retry
	// policy ran again.
	Failed []Attempt
	// Log is the tail of the guest's stderr (and, for SDK modules, stdout)
	// during the last attempt.
	Log []byte
}

// Stats describe one run of a task.
type Stats struct {
	Start, End  time.Time
	WorkerPID   int
	PeakMemory  int64 // peak linear memory of the instance, bytes
	MemoryLimit int64 // the cap the attempt ran under, bytes
	// Agent and Host name the cluster agent that ran the attempt, and its
	// machine; both are empty for a local pool.
	Agent, Host string
}

// Attempt is one run of a task that did not succeed.
type Attempt struct {
	Status   Status
	Reason   string
	Signal   string // the signal that killed the worker, such as "SIGKILL"
	ExitCode int    // the worker's exit code when it exited by itself; -1 otherwise
	Stats    Stats
}

// KilledTask is a task whose final status is killed, memory_limit or timeout:
// which tasks were killed, and why.
//
// A map's own list ([MapHandle.KilledTasks]) is complete and keeps every
// input. The pool's list ([Pool.KilledTasks]) keeps the most recent
// Config.KilledLimit tasks, and their inputs only up to
// Config.KilledInputLimit bytes: a larger Input is nil there, and
// InputSize still gives its length.
type KilledTask struct {
	Index     int
	Func      string
	Input     []byte
	InputSize int       // len of the task's input, kept when Input is dropped
	Status    Status    // the final status
	Reason    string    // the final attempt's reason
	Signal    string    // the final attempt's signal, if a signal killed the worker
	ExitCode  int       // the final attempt's worker exit code, or -1
	Attempts  []Attempt // every attempt, in order
}

// Errors returned by the pool. Match them with errors.Is.
var (
	// ErrClosed is returned by calls on a pool after Close or Terminate.
	ErrClosed = errors.New("pool: closed")
	// ErrTaskKilled matches a *TaskError for a killed task (killed,
	// memory_limit or timeout) that aborted a map.
	ErrTaskKilled = errors.New("pool: task killed")
	// ErrTaskFailed matches a *TaskError for a guest error that aborted a
	// map under OnError: Abort.
	ErrTaskFailed = errors.New("pool: task failed")
	// ErrUnknownFunc is returned when a map names a function the module does
	// not export.
	ErrUnknownFunc = errors.New("pool: unknown function")
	// ErrCrashLoop matches every *StartError: workers could not be kept up,
	// and the pool's breaker ended the maps that were waiting for them.
	ErrCrashLoop = errors.New("pool: workers cannot be kept up")
	// ErrStartTimeout matches the error of a worker that did not finish
	// its start-up (the module's loading and _initialize) within
	// Config.StartTimeout.
	ErrStartTimeout = hostconn.ErrStartTimeout
	// ErrConfig wraps every configuration error from New.
	ErrConfig = errors.New("pool: bad config")
	// ErrNoAgent says that a pool on a cluster has no agent to run its
	// tasks: none joined within StartTimeout, or none has been alive for
	// StartGiveUp while tasks waited.
	ErrNoAgent = errors.New("pool: no agent in the cluster")
	// ErrCluster says that a pool could not reach its cluster: the
	// servers of Config.Cluster, or its object store.
	ErrCluster = errors.New("pool: cluster unavailable")
)

// TaskError names the task that aborted a map.
type TaskError struct {
	Index    int
	Func     string
	Input    []byte
	Status   Status
	Reason   string
	Attempts int
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("pool: task %d (%s) ended with %s after %d attempt(s): %s", e.Index, e.Func, e.Status, e.Attempts, e.Reason)
}

// Is makes errors.Is(err, ErrTaskKilled) true for killed tasks and
// errors.Is(err, ErrTaskFailed) true for guest errors.
func (e *TaskError) Is(target error) bool {
	switch target {
	case ErrTaskKilled:
		return e.Status.IsKilledTask()
	case ErrTaskFailed:
		return e.Status == StatusError
	}
	return false
}
