package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// System names, as the report shows them.
const (
	SysNative    = "native goroutines"
	SysPipe      = "pipe round trip (cat)"
	SysInProcess = "wazero in-process"
	SysSafepool  = "safepool"
	// SysSafepoolFresh is safepool with Config.FreshInstance: no state
	// shared between tasks.
	SysSafepoolFresh = "safepool, fresh instance"
	SysPoolMap       = "Python Pool.map"
	SysPoolMap1      = "Python Pool.map chunksize=1"
	SysExecMap       = "Python ProcessPoolExecutor.map"
	SysPoolApply     = "Python Pool.apply"
	SysExecApply     = "Python ProcessPoolExecutor.submit"
	SysPoolStart     = "Python Pool"
	SysExecStart     = "Python ProcessPoolExecutor"
	SysCLI           = "safepool run"
	SysPyCLI         = "Python script (Pool.map)"
)

// Results is everything one run measured. It is what [Run] returns and what
// the report is rendered from; it round-trips through JSON, so a report can
// be rendered again without measuring again.
type Results struct {
	Machine  Machine
	Options  Options
	Started  time.Time
	Finished time.Time
	Python   PythonInfo
	Peers    PeersInfo
	Quiet    QuietStats

	Throughput []Throughput
	Latency    []Latency
	Recovery   []Recovery
	Startup    []Startup
	Chaos      []Chaos
	IdleRSS    []IdleRSS
	Stream     *Stream
	Kills      []KillRow
	CLI        []CLIRun
	OOM        []KillRow
	Metrics    []MetricsCost
	Cluster    *ClusterResults

	// Failures maps a scenario to the error that stopped it. The other
	// scenarios still run.
	Failures map[string]string
}

// QuietStats counts the waits for an idle machine (Options.Quiet).
type QuietStats struct {
	Measurements int           // measurements that waited
	Busy         int           // of those, the ones that started on a busy machine
	Waited       time.Duration // time spent waiting
}

// PythonInfo says whether the Python baselines ran.
type PythonInfo struct {
	Ran     bool
	Version string
	Reason  string // why they did not run, or what went wrong
}

// Throughput is one system's runs of square over Tasks integers.
type Throughput struct {
	System string
	Guest  string // empty for systems that run no WebAssembly
	Tasks  int
	// Elapsed is the best of Runs, the wall time of every run.
	Elapsed time.Duration
	Runs    []time.Duration
	// HostCPU and WorkerCPU are the CPU time the calling process and the
	// worker processes spent during the best run; zero when not measured.
	HostCPU, WorkerCPU time.Duration
	Correct            bool   // every output was checked
	Note               string // how the system was driven
}

// NsPerTask is the wall time per task.
func (t Throughput) NsPerTask() float64 { return perTask(t.Elapsed, t.Tasks) }

// Latency is one system's round-trip times for a single task.
type Latency struct {
	System        string
	Guest         string
	Samples       int
	P50, P99, Max time.Duration
	Mean          time.Duration
	Note          string
}

// Recovery is one kill-recovery measurement: Kills workers were SIGKILLed
// one at a time.
type Recovery struct {
	Guest   string
	Mode    string // what was killed
	Backoff string // the Retry policy's backoff
	Spares  int    // Config.Spares
	Kills   int
	// Retry is the time from the kill until the killed task started again
	// (EventTaskStart with Attempt 2). Empty when idle workers were killed.
	Retry []time.Duration
	// Full is the time from the kill until the replacement worker finished
	// its handshake (EventWorkerStart) or a spare took the dead worker's
	// place (EventSparePromoted): the pool is back at full strength.
	Full []time.Duration
}

// Startup is pool start-ups until the first Apply result.
type Startup struct {
	System  string
	Guest   string
	Cache   string // "warm" or "cold"
	Workers int
	Times   []time.Duration
	// NewTimes are the parts of Times until pool.New returned, which it
	// does when every worker finished its handshake.
	NewTimes []time.Duration
	// Compiles counts, per start-up, the modules written to the compilation
	// cache: each is one compilation to machine code. -1 when not counted.
	Compiles []int
	// CacheFiles is the number of files in the cold cache afterwards.
	CacheFiles int
}

// Chaos compares a map's time without and with a worker SIGKILLed every
// Options.ChaosEvery.
type Chaos struct {
	Guest       string
	Tasks       int
	Calm, Chaos time.Duration
	Kills       int // SIGKILLs sent during the chaotic map
	Retried     int // retries the pool scheduled
	// Correct is set when the chaotic map completed with every result ok
	// and right; otherwise Detail says what the pool did instead.
	Correct bool
	Detail  string
}

// Ratio is the chaotic throughput as a fraction of the calm one, or 0 when
// the chaotic map did not complete correctly.
func (c Chaos) Ratio() float64 {
	if !c.Correct {
		return 0
	}
	return ratio(c.Calm.Seconds(), c.Chaos.Seconds())
}

// IdleRSS is the resident memory of idle worker processes.
type IdleRSS struct {
	System string
	Guest  string
	KiB    []int64 // one per worker
}

// Stream is the host's resident memory while Imap streamed Items tasks.
type Stream struct {
	Guest         string
	Items, Window int
	Elapsed       time.Duration
	// Resident set size of the host process: before the stream, the
	// largest sample during it, and after it.
	StartKiB, PeakKiB, EndKiB int64
	Samples                   int // RSS samples taken
	Correct                   bool
}

// KillRow is what one system did with a map of killTasks tasks when the
// task killVictim was lost: its worker SIGKILLed (the kill matrix), or the
// task over its memory budget (the memory scenario).
type KillRow struct {
	System string
	Policy string // safepool's policy; empty for the Python pools
	Mode   string // the memory scenario's budget: "memory cap", "rlimit" or "rss"
	Kill   string // what stopped the task: "SIGKILL", "RLIMIT_AS", ...
	// Outcome is OutcomeCompleted, OutcomeHung or OutcomeFailed.
	Outcome string
	Tasks   int
	OK      int   // results returned, and right
	InOrder bool  // the results came back in input order
	Lost    []int // the tasks without a result
	Retried bool  // the lost task ran again
	Named   bool  // the caller is told which task was lost
	// Error is what the caller got for the lost task, or for the whole
	// call: an exception's name, or safepool's status.
	Error   string
	After   string
	Elapsed time.Duration
	Detail  string
}

// CLIRun is one run of a program over a file of JSON Lines, measured from
// outside as a child process: the safepool command line, or the Python
// script that does the same job.
type CLIRun struct {
	System string
	Guest  string // empty for the Python script
	Lines  int
	// Elapsed is the wall time from starting the process until it exited:
	// its start-up, its workers' and the whole job.
	Elapsed time.Duration
	// PeakKiB is the process's own peak resident set size: VmHWM from
	// /proc/<pid>/status, sampled every few milliseconds while it ran
	// (the last sample is taken at most that long before it exits). 0 when
	// no sample was taken. (Not ru_maxrss from its wait: Linux keeps that
	// across execve, so a child of the harness, which starts as a vfork of
	// it, reports at least the harness's own peak.)
	PeakKiB int64
	Samples int
	// WorkerPeakKiB is the largest VmHWM of the processes it started (its
	// workers), sampled the same way; Workers is how many were seen. A
	// worker that lives for less than a sample may be missed, as in the
	// quick mode's shortest runs.
	WorkerPeakKiB int64
	Workers       int
	// CPU is the user and system CPU time of the process and of the
	// descendants it reaped (its workers), from the rusage of its wait.
	CPU     time.Duration
	Correct bool // every output line was checked
	Note    string
}

// NsPerLine is the wall time per line.
func (c CLIRun) NsPerLine() float64 { return perTask(c.Elapsed, c.Lines) }

// Save writes r as JSON.
func (r *Results) Save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Load reads results that Save wrote.
func Load(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := &Results{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("harness: %s: %w", path, err)
	}
	return r, nil
}

func (r *Results) fail(scenario string, err error) {
	if r.Failures == nil {
		r.Failures = map[string]string{}
	}
	r.Failures[scenario] = err.Error()
}

func perTask(d time.Duration, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(d.Nanoseconds()) / float64(n)
}

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
