package harness

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Scenario names, in the order Run runs them and the report shows them.
const (
	ScenarioThroughput = "throughput"
	ScenarioLatency    = "latency"
	ScenarioRecovery   = "recovery"
	ScenarioStartup    = "startup"
	ScenarioChaos      = "chaos"
	ScenarioMemory     = "memory"
	ScenarioKills      = "kills"
	ScenarioCLI        = "cli"
	ScenarioOOM        = "oom"
	ScenarioMetrics    = "metrics"
)

// Scenarios lists every scenario name.
var Scenarios = []string{
	ScenarioThroughput, ScenarioLatency, ScenarioRecovery, ScenarioStartup,
	ScenarioChaos, ScenarioMemory, ScenarioKills, ScenarioCLI, ScenarioOOM, ScenarioMetrics, ScenarioCluster,
}

// The guests every scenario runs. Both export "square" on decimal integers,
// so they take the same inputs and give the same outputs.
const (
	// GoGuest is the Go SDK guest: what users write. Its per-call overhead
	// inside the guest is about a microsecond.
	GoGuest = "tasks"
	// WATGuest is the hand-written WebAssembly text guest, whose per-call
	// cost is close to nothing, so that the pool's own cost shows.
	WATGuest = "wsquare"
)

// Guests are every guest the harness knows, the Go guest first.
var Guests = []string{GoGuest, WATGuest}

// Options sizes a run. Use [FullOptions] or [QuickOptions] and change
// fields; a zero field is not a default.
type Options struct {
	// Quick marks a smoke run whose figures are not meant to be compared.
	Quick bool
	// Workers is the number of workers (and goroutines) of every system.
	Workers int

	// ThroughputN is the number of squares each throughput run computes.
	ThroughputN int
	// Rounds is how many times each system runs the throughput map, the
	// systems taking turns; each keeps its best run.
	Rounds int
	// PythonChunk1N is the number of tasks of Python's Pool.map run with
	// chunksize=1, which is too slow for ThroughputN.
	PythonChunk1N int
	// LatencySamples is the number of round trips timed per system, after
	// LatencySamples/10 untimed ones, in LatencyRounds turns.
	LatencySamples int
	LatencyRounds  int
	// Kills is the number of workers killed per kill-recovery measurement.
	Kills int
	// WarmStarts and ColdStarts are the number of pool start-ups timed
	// with a warm and with a cold (fresh, empty) compilation cache.
	WarmStarts, ColdStarts int
	// Guests are the guests the throughput, latency, start-up, chaos and
	// idle-memory scenarios run. Kill recovery and the mid-map kill always
	// use the Go guest, whose slow_square gives a task to kill.
	Guests []string
	// ColdGuests are the guests whose cold start is measured. Compiling
	// the Go guest takes seconds, and many more under -race.
	ColdGuests []string
	// ChaosN is the map size of the chaos scenario; ChaosEvery is how often
	// a worker is killed during it. A map that takes less than ten
	// ChaosEvery when calm is made longer, so that it sees enough kills.
	ChaosN     int
	ChaosEvery time.Duration
	// ChaosGiveUp is the chaos pool's StartGiveUp: how long a storm that
	// kills every worker before its handshake may last before the map
	// ends with the pool's StartError, which the report then gives as the
	// scenario's outcome.
	ChaosGiveUp time.Duration
	// StreamN is the number of items Imap streams while host memory is
	// sampled; StreamWindow is Imap's window.
	StreamN      int
	StreamWindow int
	// HangTimeout is how long a Python pool's map whose worker was killed
	// is given, after the kill, before it is called hung.
	HangTimeout time.Duration
	// MemoryBudgetMiB is the memory scenario's budget: safepool's memory
	// cap, and what a Python worker may add to its address space or
	// resident set. The task over it allocates three times as much.
	MemoryBudgetMiB int
	// CLILines are the input sizes, in lines, that the safepool command
	// line and the Python script run over, smallest first.
	CLILines []int

	// Quiet is how long a measurement waits for the machine to be mostly
	// idle before it starts; QuietBudget caps the waiting of the whole run.
	// Zero Quiet does not wait.
	Quiet, QuietBudget time.Duration

	// Python is the interpreter for the Python baselines: "" looks up
	// python3 on PATH, "none" skips them.
	Python string
	// PeerPython is the interpreter for the peers (billiard, pebble,
	// joblib) and for the kill and memory scenarios of every Python pool:
	// "" picks whichever of Python, python3 and /usr/bin/python3 imports the
	// most peers, "none" skips them.
	PeerPython string
	// CacheDir is the compilation cache of the warm runs. Default: a
	// directory under os.TempDir() kept between runs.
	CacheDir string
	// CPUProfile, when set, is a directory that receives a CPU profile of
	// this (the host) process for each safepool throughput run.
	CPUProfile string
	// Only limits the run to these scenarios; empty runs them all.
	Only []string
	// Log receives progress lines; nil discards them.
	Log io.Writer `json:"-"`
}

// FullOptions are the sizes of a real run: a few minutes on two cores.
func FullOptions() Options {
	return Options{
		Workers:         2,
		ThroughputN:     1_000_000,
		Rounds:          3,
		PythonChunk1N:   20_000,
		LatencySamples:  5_000,
		LatencyRounds:   10,
		Kills:           20,
		WarmStarts:      10,
		ColdStarts:      3,
		Guests:          []string{GoGuest, WATGuest},
		ColdGuests:      []string{GoGuest, WATGuest},
		ChaosN:          1_000_000,
		ChaosEvery:      100 * time.Millisecond,
		ChaosGiveUp:     2 * time.Minute,
		StreamN:         10_000_000,
		StreamWindow:    4096,
		HangTimeout:     8 * time.Second,
		MemoryBudgetMiB: 32,
		CLILines:        []int{1_000_000, 2_000_000},
		Quiet:           20 * time.Second,
		QuietBudget:     5 * time.Minute,
	}
}

// QuickOptions are the sizes of a smoke run that checks every scenario
// works, in well under a minute. Its figures are too small to compare.
func QuickOptions() Options {
	return Options{
		Quick:           true,
		Workers:         2,
		ThroughputN:     20_000,
		Rounds:          1,
		PythonChunk1N:   2_000,
		LatencySamples:  300,
		LatencyRounds:   3,
		Kills:           3,
		WarmStarts:      2,
		ColdStarts:      1,
		Guests:          []string{GoGuest, WATGuest},
		ColdGuests:      []string{WATGuest},
		ChaosN:          30_000,
		ChaosEvery:      100 * time.Millisecond,
		ChaosGiveUp:     20 * time.Second,
		StreamN:         100_000,
		StreamWindow:    1024,
		HangTimeout:     2 * time.Second,
		MemoryBudgetMiB: 32,
		CLILines:        []int{20_000, 40_000},
	}
}

func (o *Options) validate() error {
	for _, s := range o.Only {
		if !slices.Contains(Scenarios, s) {
			return fmt.Errorf("harness: unknown scenario %q; the scenarios are %s", s, strings.Join(Scenarios, ", "))
		}
	}
	if len(o.Guests) == 0 {
		return fmt.Errorf("harness: Options.Guests is empty; use some of %s", strings.Join(Guests, ", "))
	}
	for _, g := range append(slices.Clone(o.Guests), o.ColdGuests...) {
		if !slices.Contains(Guests, g) {
			return fmt.Errorf("harness: unknown guest %q; the guests are %s", g, strings.Join(Guests, ", "))
		}
	}
	if o.Workers < 1 || o.ThroughputN < 1 || o.Rounds < 1 || o.LatencySamples < 10 || o.LatencyRounds < 1 || o.Kills < 1 ||
		o.WarmStarts < 1 || o.ChaosN < 1 || o.ChaosEvery <= 0 || o.ChaosGiveUp <= 0 || o.StreamN < 1 || o.StreamWindow < 1 || o.MemoryBudgetMiB < 1 {
		return fmt.Errorf("harness: every size in Options must be positive (LatencySamples at least 10); start from FullOptions or QuickOptions")
	}
	if len(o.CLILines) == 0 || !slices.IsSorted(o.CLILines) || o.CLILines[0] < 1 {
		return fmt.Errorf("harness: Options.CLILines must hold positive sizes, smallest first; start from FullOptions or QuickOptions")
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(os.TempDir(), "safepool-bench-cache")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

func (o *Options) wants(scenario string) bool {
	return len(o.Only) == 0 || slices.Contains(o.Only, scenario)
}

func (o *Options) logf(format string, a ...any) {
	fmt.Fprintf(o.Log, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}
