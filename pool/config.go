package pool

import (
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/safepool/safepool/internal/engine"
)

// Policy says what happens to a task that ended badly.
type Policy uint8

// Policies. A Policy field left zero inherits: a per-cause field takes
// Config.KillPolicy, and KillPolicy and OnError default to Skip.
const (
	policyInherit Policy = iota
	// Skip records the task's status and leaves its output empty; the map
	// goes on: [0, 1, 4, <killed>, 16, ...].
	Skip
	// Abort fails the whole map with a *TaskError naming the task, cancels
	// its outstanding tasks and stops the workers running them.
	Abort
	// Retry runs the task again, up to Retry.MaxAttempts in all, with
	// exponential backoff and jitter.
	Retry
)

func (p Policy) String() string {
	switch p {
	case policyInherit:
		return "inherit"
	case Skip:
		return "skip"
	case Abort:
		return "abort"
	case Retry:
		return "retry"
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// ParsePolicy parses "skip", "abort" or "retry".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "skip":
		return Skip, nil
	case "abort":
		return Abort, nil
	case "retry":
		return Retry, nil
	}
	return policyInherit, fmt.Errorf("pool: unknown policy %q: use skip, abort or retry", s)
}

// RetryPolicy tunes the Retry policy. Zero fields mean the defaults given.
type RetryPolicy struct {
	// MaxAttempts is the most times a task runs, the first included.
	// Default 3.
	MaxAttempts int
	// Backoff is the wait before the first retry; it doubles for each
	// further one, with up to 50% random jitter. Default 10ms.
	Backoff time.Duration
	// MaxBackoff caps the wait. Default 1s.
	MaxBackoff time.Duration
	// MemoryGrowth multiplies the memory cap of a task that hit it, before
	// it is retried. Default 2; 1 retries with the same cap.
	MemoryGrowth float64
	// MaxMemory is the largest cap growth may reach, in bytes. Default
	// 8 × MemoryLimit, at most 4 GiB.
	MaxMemory int64
	// MinAvailable is the memory gate: before re-running a task whose
	// worker was killed by a signal, wait until the machine's MemAvailable
	// (from /proc/meminfo) is at least this many bytes. 0 turns the gate
	// off.
	MinAvailable int64
	// GateTimeout is how long the gate waits. When it runs out the task is
	// not retried and keeps status killed. Default 30s.
	GateTimeout time.Duration
}

// Config configures a Pool. The zero value of every field means the default
// given in its comment; New validates the whole config and keeps its own
// copy.
type Config struct {
	// Module is the path of the .wasm file. Exactly one of Module and
	// ModuleBytes is set.
	Module string
	// ModuleBytes is the module itself.
	ModuleBytes []byte

	// Workers is the number of worker processes. Default runtime.NumCPU().
	Workers int
	// MemoryLimit caps each task's linear memory, in bytes. Default 64 MiB.
	MemoryLimit int64
	// Timeout is each task's deadline. Default 0: no deadline. A worker
	// that stops answering altogether is killed Timeout + 1s after the task
	// started. It covers the task's own call only, never the start of an
	// instance (see StartTimeout).
	Timeout time.Duration
	// StartTimeout bounds each worker's start-up: the process, loading the
	// module and its _initialize, up to the handshake; and the start of a
	// new instance later in the worker's life. A worker that takes longer
	// is killed. Default 30s.
	StartTimeout time.Duration
	// StartGiveUp is how long workers may keep failing to start, or dying
	// before they run a task, before the maps waiting for them fail with a
	// *StartError. Default 10s. Five failures in a row by the module's own
	// doing (it exits or fails as it starts) end the pool's start-ups at
	// once; kills from outside never do, and only StartGiveUp ends the
	// waiting maps.
	StartGiveUp time.Duration
	// Overcommit lets Workers+Spares exceed what the machine's available
	// memory (MemAvailable) can hold at MemoryLimit plus about 40 MiB of
	// overhead per worker, which New refuses otherwise.
	Overcommit bool
	// program is the guest's argv[0] when it is not the module's file name
	// (an agent's module is stored under its hash).
	program string

	// KillPolicy is the policy for killed tasks (statuses killed, memory_limit
	// and timeout). Default Skip.
	KillPolicy Policy
	// OnKilled, OnMemoryLimit and OnTimeout override KillPolicy for one cause,
	// the way Kubernetes podFailurePolicy does.
	OnKilled, OnMemoryLimit, OnTimeout Policy
	// OnError is the policy for tasks whose guest returned an error,
	// panicked or trapped. Default Skip: the error is recorded and the map
	// goes on. Abort stops the map at the first error.
	OnError Policy
	// Retry tunes the Retry policy.
	Retry RetryPolicy

	// Env, Args and Dirs are what the guest may see of its host; nothing is
	// granted by default (see grants.go and SECURITY.md). Env is the
	// guest's whole environment: a variable not in it is invisible. Args
	// are the guest's arguments, in order, after the program name (the
	// module's file name). Dirs are host directories the guest may open
	// under their GuestPath, read-only unless Writable: nothing outside
	// them is reachable by "..", a symlink or an absolute path, on either
	// engine.
	Env  map[string]string
	Args []string
	Dirs []Dir
	// HostFuncs are the functions a guest may call with guest.CallHost
	// (see hostfunc.go). Each runs in this process, under the context of
	// the map or Apply whose task called it, with the task's deadline.
	// Not available on a cluster.
	HostFuncs map[string]HostFunc

	// FreshInstance starts every task from the state its instance had
	// right after start-up, so that no task sees what another left in
	// memory, globals, tables or goroutines. Default false: an instance
	// serves tasks until one traps. Command modules always get a fresh
	// instance.
	//
	// Under wazero the instance is reset after each task: its linear
	// memory is a copy-on-write mapping of a snapshot taken after
	// start-up, and its mutable globals are set back. A reset costs a copy
	// of the pages the task wrote, which the kernel tracks (3–8 µs for a
	// small task of a Go guest, done after an Apply's result is sent).
	// Through the pool a Go guest's small task costs about 2–3× a shared
	// instance's, in an Apply and in a Map, where a shared instance runs
	// many tasks per call into the guest (safepool_batch) and a fresh one
	// needs a call and a reset per task (bench/RESULTS.md has the target
	// rows). When a
	// reset cannot be exact (the task grew the memory, trapped, or changed
	// its WASI file table; the module changes tables; Dirs are granted)
	// and on wasmtime, a new instance is made instead, which for a Go
	// guest costs about 8 ms. What a guest's runtime drew from the random
	// source at start-up is the same for every task of a reset instance.
	// SECURITY.md lists what is shared in each mode.
	FreshInstance bool
	// MaxTasksPerWorker recycles a worker after it ran this many tasks
	// (multiprocessing's maxtasksperchild). Default 0: never.
	MaxTasksPerWorker int
	// Spares is how many extra workers the pool keeps started and idle. A
	// worker that dies (or is recycled) is replaced by a spare at once,
	// instead of after a worker's start-up (about 100 ms for a Go guest),
	// and a new spare starts in the background. Spares cost a worker's
	// memory each and run no tasks. Default 0.
	Spares int

	// OutputLimit caps each task's output, in bytes. Default 16 MiB.
	OutputLimit int64
	// LogLimit is how much of the guest's stderr is kept per task, in
	// bytes. Default 64 KiB.
	LogLimit int64
	// BatchSize is the most tasks sent to a worker in one frame. Default
	// 256. Only the running task is blamed when a worker dies, whatever the
	// batch size.
	BatchSize int

	// Engine is the WebAssembly engine the workers run: "wazero" (the
	// default, pure Go) or "wasmtime" (only in programs that import
	// github.com/safepool/safepool/engine/wasmtime, which needs cgo).
	Engine string
	// CacheDir is the compilation cache shared by all workers of the
	// machine, with a directory per engine. Default: safepool's directory
	// in the user's cache directory.
	CacheDir string
	// WorkerCommand runs workers with an explicit command, such as
	// []string{"/usr/bin/safepool", "worker"}. Default: re-execute the
	// current binary, which needs no setup.
	WorkerCommand []string

	// Cluster says where tasks run: "" (the default) in worker processes
	// on this machine; "embedded" in an in-process NATS JetStream server
	// with an in-process agent running Workers local workers, which
	// exercises the whole cluster path on one machine; or
	// "nats://host1:4222,host2:4222" (or tls://) on the agents of existing
	// servers (see 'safepool serve'). Every guarantee is the same as
	// local: policies, input order, the killed-task list. A cluster needs
	// its transport linked in: import _ "github.com/safepool/safepool/cluster".
	Cluster string
	// ClusterOptions are the transport's connection options: for NATS, a
	// cluster.Options value (credentials, TLS). nil for none.
	ClusterOptions any

	// KilledLimit is how many killed tasks the pool's own list
	// (Pool.KilledTasks) keeps, the most recent. Default 1000; -1 keeps
	// none. Each map's own list is complete.
	KilledLimit int
	// KilledInputLimit is the largest input the pool's killed-task list
	// keeps, in bytes; a larger one is dropped (KilledTask.InputSize keeps
	// its length). Default 64 KiB.
	KilledInputLimit int64

	// OnEvent, when set, receives task and worker events. It is called from
	// the pool's goroutines and must return quickly. Setting it makes
	// workers report each task's start, which costs a little throughput.
	OnEvent func(Event)
	// Observer, when set, receives the same events as OnEvent but
	// EventTaskStart, and so costs little throughput: workers go on
	// running tasks in batches without reporting each start. Each task
	// still brings two Events (EventTaskEnd, EventTaskFinal); a metrics
	// collector is cheaper as the TaskObserver (see package
	// github.com/safepool/safepool/metrics). It is called from the pool's
	// goroutines, sometimes from inside a call to the pool (such as
	// MapHandle.Cancel), so it must return quickly and must not call the
	// pool. An event is sent once what it reports is done: a task's
	// EventTaskFinal just after its result was delivered to its map, so
	// that it can come after the map's call returned (its EventTaskEnd
	// comes before).
	Observer func(Event)
	// TaskObserver, when set, is a cheaper Observer for a metrics
	// collector: it is told of attempts' ends and final results as
	// TaskRecords, a batch at a time (the results a worker's answer
	// brought), with no Event built per task, and of the other events as
	// Observer is (see TaskObserver). One that is a Tallier, such as a
	// *metrics.Collector, is told of no task at all: the pool counts them
	// in its Tally (see Tallier). It does not change what Observer and
	// OnEvent receive.
	TaskObserver TaskObserver
	// Logger, when set, receives structured records of workers starting
	// and ending, kills, retries, breaker trips and the policy's
	// decisions. Default nil: no logs. Attempts that succeed are logged at
	// slog.LevelDebug only, and cost nothing when that level is off.
	Logger *slog.Logger
}

const (
	defaultMemoryLimit = 64 << 20
	defaultOutputLimit = 16 << 20
	defaultLogLimit    = 64 << 10
	defaultBatchSize   = 256
	maxMemoryLimit     = 4 << 30
	hangGrace          = time.Second
)

// defaultStartTimeout bounds a worker's start-up. The race detector slows
// the worker's module loading about tenfold.
var defaultStartTimeout = func() time.Duration {
	if raceEnabled {
		return 3 * time.Minute
	}
	return 30 * time.Second
}()

// withDefaults validates c and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	bad := func(format string, a ...any) (Config, error) {
		return c, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	switch {
	case c.Module == "" && c.ModuleBytes == nil:
		return bad("set Module (a .wasm path) or ModuleBytes")
	case c.Module != "" && c.ModuleBytes != nil:
		return bad("set only one of Module and ModuleBytes")
	case c.Workers < 0:
		return bad("Workers is %d; use 0 for one per CPU, or a positive number", c.Workers)
	case c.MemoryLimit < 0 || c.MemoryLimit > maxMemoryLimit:
		return bad("MemoryLimit is %d; use 0 for 64 MiB, or up to 4 GiB", c.MemoryLimit)
	case c.MemoryLimit > 0 && c.MemoryLimit < 64<<10:
		return bad("MemoryLimit is %d bytes; it must be at least one 64 KiB page", c.MemoryLimit)
	case c.Timeout < 0:
		return bad("Timeout is %s; use 0 for none", c.Timeout)
	case c.StartTimeout < 0:
		return bad("StartTimeout is %s; use 0 for the default of 30s, or a positive duration", c.StartTimeout)
	case c.StartGiveUp < 0:
		return bad("StartGiveUp is %s; use 0 for the default of 10s, or a positive duration", c.StartGiveUp)
	case c.KilledLimit < -1:
		return bad("KilledLimit is %d; use 0 for 1000, -1 to keep none, or a positive number", c.KilledLimit)
	case c.KilledInputLimit < 0:
		return bad("KilledInputLimit is %d; use 0 for 64 KiB, or a positive number of bytes", c.KilledInputLimit)
	case c.MaxTasksPerWorker < 0:
		return bad("MaxTasksPerWorker is %d; use 0 for never", c.MaxTasksPerWorker)
	case c.Spares < 0:
		return bad("Spares is %d; use 0 for none", c.Spares)
	case c.OutputLimit < 0 || c.LogLimit < 0 || c.BatchSize < 0:
		return bad("OutputLimit, LogLimit and BatchSize must not be negative")
	case c.Retry.MaxAttempts < 0 || c.Retry.Backoff < 0 || c.Retry.MaxBackoff < 0 ||
		c.Retry.MaxMemory < 0 || c.Retry.MinAvailable < 0 || c.Retry.GateTimeout < 0:
		return bad("Retry fields must not be negative")
	case c.Retry.MemoryGrowth != 0 && c.Retry.MemoryGrowth < 1:
		return bad("Retry.MemoryGrowth is %g; use 1 or more", c.Retry.MemoryGrowth)
	}
	if err := engine.Check(c.Engine); err != nil {
		return c, fmt.Errorf("%w: Engine: %w", ErrConfig, err)
	}
	if err := c.checkGrants(); err != nil {
		return c, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := c.checkHostFuncs(); err != nil {
		return c, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	for name, p := range map[string]Policy{"KillPolicy": c.KillPolicy, "OnKilled": c.OnKilled, "OnMemoryLimit": c.OnMemoryLimit, "OnTimeout": c.OnTimeout, "OnError": c.OnError} {
		if p > Retry {
			return bad("%s is %s; use Skip, Abort or Retry", name, p)
		}
	}
	if c.Workers == 0 {
		c.Workers = runtime.NumCPU()
	}
	if c.Engine == "" {
		c.Engine = engine.Wazero
	}
	if c.MemoryLimit == 0 {
		c.MemoryLimit = defaultMemoryLimit
	}
	if c.KillPolicy == policyInherit {
		c.KillPolicy = Skip
	}
	for _, p := range []*Policy{&c.OnKilled, &c.OnMemoryLimit, &c.OnTimeout} {
		if *p == policyInherit {
			*p = c.KillPolicy
		}
	}
	if c.OnError == policyInherit {
		c.OnError = Skip
	}
	if c.OutputLimit == 0 {
		c.OutputLimit = defaultOutputLimit
	}
	if c.LogLimit == 0 {
		c.LogLimit = defaultLogLimit
	}
	if c.BatchSize == 0 {
		c.BatchSize = defaultBatchSize
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = defaultStartTimeout
	}
	if c.StartGiveUp == 0 {
		c.StartGiveUp = 10 * time.Second
	}
	if c.KilledLimit == 0 {
		c.KilledLimit = 1000
	}
	if c.KilledInputLimit == 0 {
		c.KilledInputLimit = 64 << 10
	}
	r := &c.Retry
	if r.MaxAttempts == 0 {
		r.MaxAttempts = 3
	}
	if r.Backoff == 0 {
		r.Backoff = 10 * time.Millisecond
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = time.Second
	}
	if r.MemoryGrowth == 0 {
		r.MemoryGrowth = 2
	}
	if r.MaxMemory == 0 {
		r.MaxMemory = min(8*c.MemoryLimit, maxMemoryLimit)
	}
	if r.MaxMemory < c.MemoryLimit {
		r.MaxMemory = c.MemoryLimit
	}
	if r.GateTimeout == 0 {
		r.GateTimeout = 30 * time.Second
	}
	if c.ModuleBytes != nil {
		c.ModuleBytes = append([]byte{}, c.ModuleBytes...) // empty stays non-nil: "not wasm", not "read module"
	}
	c.WorkerCommand = append([]string(nil), c.WorkerCommand...)
	return c, nil
}

// policyFor returns the policy for a task that ended with status s.
func (c *Config) policyFor(s Status) Policy {
	switch s {
	case StatusKilled:
		return c.OnKilled
	case StatusMemoryLimit:
		return c.OnMemoryLimit
	case StatusTimeout:
		return c.OnTimeout
	case StatusError:
		return c.OnError
	}
	return Skip
}
