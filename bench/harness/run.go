package harness

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"github.com/safepool/safepool/pool"
)

// bench is one run in progress.
type bench struct {
	opts    *Options
	res     *Results
	py      *pyRunner
	peer    *peerRunner
	modules map[string]string // guest name -> .wasm path
	tmp     string            // removed at the end of the run

	pyThroughput []Throughput // Python's throughput rows, across rounds
}

// Run runs the scenarios opts asks for and returns what they measured. A
// scenario that fails is recorded in Results.Failures and the others still
// run; Run itself fails only when it cannot start (bad options, a guest
// that does not build). When ctx is done the remaining scenarios are
// skipped.
func Run(ctx context.Context, opts Options) (*Results, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	res := &Results{Machine: readMachine(), Options: opts, Started: time.Now()}
	tmp, err := os.MkdirTemp("", "safepool-bench-")
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("harness: cache dir: %w", err)
	}
	b := &bench{opts: &opts, res: res, modules: map[string]string{}, tmp: tmp}
	opts.logf("building the guests")
	for _, g := range Guests {
		if b.modules[g], err = modulePath(g); err != nil {
			return nil, err
		}
	}
	b.py = newPyRunner(&opts, tmp, &res.Python)
	if res.Python.Ran {
		opts.logf("python baselines: Python %s", res.Python.Version)
	} else {
		opts.logf("python baselines: %s", res.Python.Reason)
	}
	b.peer = newPeerRunner(&opts, tmp, &res.Peers)
	for _, p := range Peers {
		if v, ok := res.Peers.Versions[p]; ok {
			opts.logf("peer %s %s on %s (Python %s)", p, v, res.Peers.Python, res.Peers.Version)
		} else {
			opts.logf("peer %s MISSING: %s", p, res.Peers.Missing[p])
		}
	}

	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{ScenarioThroughput, b.throughput},
		{ScenarioLatency, b.latency},
		{ScenarioRecovery, b.recovery},
		{ScenarioStartup, b.startup},
		{ScenarioChaos, b.chaos},
		{ScenarioMemory, b.memory},
		{ScenarioKills, b.kills},
		{ScenarioCLI, b.cli},
		{ScenarioOOM, b.oom},
		{ScenarioMetrics, b.metricsCost},
		{ScenarioCluster, b.clusterScenario},
	}
	for _, s := range steps {
		if !opts.wants(s.name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			res.fail(s.name, err)
			continue
		}
		// Each scenario starts without the garbage of the last one (a
		// million results per throughput round), so that no collection
		// left over from it runs inside another's measurements.
		runtime.GC()
		debug.FreeOSMemory()
		opts.logf("%s: start", s.name)
		start := time.Now()
		if err := s.run(ctx); err != nil {
			res.fail(s.name, err)
			opts.logf("%s: FAILED: %v", s.name, err)
			continue
		}
		opts.logf("%s: done in %s", s.name, time.Since(start).Round(time.Millisecond))
	}
	res.Machine.LoadEnd = loadAvg()
	res.Finished = time.Now()
	return res, nil
}

// python runs one scenario of the Python baselines. A failure is recorded
// under "<scenario>/python" and does not fail the scenario.
func (b *bench) python(scenario string, extra ...string) *pyOutput {
	if !b.py.enabled() || b.res.Failures[scenario+"/python"] != "" {
		return nil
	}
	b.opts.logf("%s: python baselines", scenario)
	out, err := b.py.run(scenario, extra...)
	if err != nil {
		b.res.fail(scenario+"/python", err)
		b.opts.logf("%s: python FAILED: %v", scenario, err)
		return nil
	}
	return out
}

// newPool starts a pool of opts.Workers workers on guest, sharing the warm
// compilation cache. edit, if not nil, changes the config first.
func (b *bench) newPool(guest string, edit func(*pool.Config)) (*pool.Pool, error) {
	cfg := pool.Config{Module: b.modules[guest], Workers: b.opts.Workers, CacheDir: b.opts.CacheDir}
	if edit != nil {
		edit(&cfg)
	}
	p, err := pool.New(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", guest, err)
	}
	return p, nil
}

// closePool ends a pool whose maps are all done. It terminates rather than
// closes: the two are the same for an idle pool, except that Close waits
// for each worker to exit, and a worker built with the race detector sleeps
// a second on its way out.
func closePool(p *pool.Pool) { _ = p.Terminate() }

// checkResults reports the first result that is not ok or not the square
// of its index.
func checkResults(rs []pool.Result, n int) error {
	if len(rs) != n {
		return fmt.Errorf("%d results for %d tasks", len(rs), n)
	}
	for i := range rs {
		if rs[i].Status != pool.StatusOK {
			return fmt.Errorf("task %d: %s: %s", i, rs[i].Status, rs[i].Error)
		}
	}
	return checkSquares(func(i int) []byte { return rs[i].Output }, n)
}

// spread runs fn over [0, n) in chunks of at most chunk, on workers
// goroutines that take the next chunk when they finish one. fn gets the
// goroutine's number, so that each goroutine can own its state.
func spread(n, workers, chunk int, fn func(w, lo, hi int) error) error {
	var next atomic.Int64
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for {
				lo := int(next.Add(int64(chunk))) - chunk
				if lo >= n {
					errs <- nil
					return
				}
				if err := fn(w, lo, min(lo+chunk, n)); err != nil {
					next.Store(int64(n)) // stop the others
					errs <- err
					return
				}
			}
		}()
	}
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// percentile returns the p-th percentile (nearest rank) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return percentile(s, 50)
}
