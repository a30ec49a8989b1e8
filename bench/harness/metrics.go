package harness

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/safepool/safepool/metrics"
	"github.com/safepool/safepool/pool"
)

// goalMetricsCost is the throughput the Prometheus collector may cost.
const goalMetricsCost = 0.02

// metricsScrapeEvery is how often the collector is scraped while its pool
// maps: more often than Prometheus usually scrapes, so that the scrapes'
// cost is not left out.
const metricsScrapeEvery = time.Second

// MetricsCost is one guest's throughput with and without the Prometheus
// collector (metrics.Collector as Config.TaskObserver, watching the pool
// and scraped while it maps), the two taking turns.
type MetricsCost struct {
	Guest string
	Tasks int // per map
	// Off and On are the wall times of the maps without and with the
	// collector, one per round.
	Off, On []time.Duration
	// OffCPU and OnCPU are the host process's CPU time (rusage), where the
	// collector runs, one per round; OffWorkerCPU and OnWorkerCPU the
	// workers'.
	OffCPU, OnCPU             []time.Duration
	OffWorkerCPU, OnWorkerCPU []time.Duration
	// Counted is how many ok tasks the collector counted; Scrapes how many
	// times it was gathered.
	Counted, Scrapes int
	Correct          bool
}

// Ratio is the throughput with the collector ÷ without: the median over
// the rounds of each round's pair, so that a burst of load from elsewhere
// weighs on one round only.
func (m MetricsCost) Ratio() float64 { return quantile(m.wallRatios(), 0.5) }

// WallSpread is the lower and upper quartile of the rounds' throughput
// ratios: how far load from elsewhere moves them.
func (m MetricsCost) WallSpread() (lo, hi float64) {
	rs := m.wallRatios()
	return quantile(rs, 0.25), quantile(rs, 0.75)
}

// RatioInterval is a 95% confidence interval of Ratio, the median of the
// rounds' ratios, free of any assumption about their distribution: the
// order statistics k and n+1-k, with k the largest rank for which a
// binomial(n, ½) count falls below k with probability at most 2.5%.
func (m MetricsCost) RatioInterval() (lo, hi float64) {
	rs := m.wallRatios()
	if len(rs) == 0 {
		return 0, 0
	}
	slices.Sort(rs)
	k := medianRank(len(rs))
	return rs[k-1], rs[len(rs)-k]
}

// medianRank is the rank k (from 1) of the lower bound of a 95% interval
// of the median of n values: the largest k with P(Binomial(n, ½) < k) ≤
// 2.5%, or 1 when n is too small for any.
func medianRank(n int) int {
	k := 1
	p := math.Pow(0.5, float64(n)) // P(X = j), from j = 0
	cdf := 0.0
	for j := range n {
		cdf += p // P(X ≤ j), which is P(X < j+1)
		if cdf > 0.025 {
			break
		}
		k = j + 1
		p *= float64(n-j) / float64(j+1)
	}
	return k
}

// Met judges the collector's cost against goalMetricsCost: true when its
// counts are right and the whole interval of the median throughput ratio
// is within the goal, false when the counts are wrong or the whole interval
// is beyond it, nil when the interval straddles the goal: load from
// elsewhere moved the rounds too much to tell.
func (m MetricsCost) Met() *bool {
	lo, hi := m.RatioInterval()
	switch {
	case !m.Correct || hi < 1-goalMetricsCost:
		return met(false)
	case lo >= 1-goalMetricsCost:
		return met(true)
	}
	return nil
}

// wallRatios are the rounds' throughput ratios, on ÷ off.
func (m MetricsCost) wallRatios() []float64 {
	var rs []float64
	for i := range min(len(m.Off), len(m.On)) {
		if m.On[i] > 0 {
			rs = append(rs, float64(m.Off[i])/float64(m.On[i]))
		}
	}
	return rs
}

// quantile is the q quantile of xs, interpolated between ranks; 0 for none.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}

// metricsSize is the map size and the rounds of the metrics scenario.
func (o *Options) metricsSize() (n, rounds int) {
	return max(o.ThroughputN/10, 1000), 24 * o.Rounds
}

// metricsCost is scenario 10: the cost of the Prometheus collector. On each
// guest two pools of Workers workers map square over the same inputs, one
// with the collector and one without, taking turns (in alternating order)
// for several rounds, in metricsBlocks blocks with new pools; each round's
// wall time and CPU time (the host's and the workers') are kept.
func (b *bench) metricsCost(ctx context.Context) error {
	n, rounds := b.opts.metricsSize()
	inputs := decimals(n)
	for _, g := range b.opts.Guests {
		row, err := b.metricsGuest(ctx, g, inputs, rounds)
		if err != nil {
			return err
		}
		b.res.Metrics = append(b.res.Metrics, row)
	}
	return nil
}

// metricsBlocks is how many times the metrics scenario makes its two pools
// anew. Within a run, a pool's workers may keep a placement on the cores
// that makes them faster or slower than the other pool's, whatever
// observes them: with new pools every block, in alternating order, that
// bias falls on both sides alike.
const metricsBlocks = 8

func (b *bench) metricsGuest(ctx context.Context, g string, inputs [][]byte, rounds int) (MetricsCost, error) {
	row := MetricsCost{Guest: g, Tasks: len(inputs), Correct: true}
	blocks := min(metricsBlocks, rounds)
	for block := range blocks {
		// Spread the rounds over the blocks, the first ones taking the rest.
		n := rounds / blocks
		if block < rounds%blocks {
			n++
		}
		if err := b.metricsBlock(ctx, &row, inputs, n, block%2 == 1); err != nil {
			row.Correct = false
			return row, err
		}
	}
	return row, nil
}

// metricsBlock makes the two pools, the one with the collector first when
// onFirst, warms them and runs rounds rounds, adding them to row.
func (b *bench) metricsBlock(ctx context.Context, row *MetricsCost, inputs [][]byte, rounds int, onFirst bool) error {
	g := row.Guest
	c := metrics.New()
	var off, on *pool.Pool
	for _, withMetrics := range []bool{onFirst, !onFirst} {
		var p *pool.Pool
		var err error
		if withMetrics {
			p, err = b.newPool(g, func(cfg *pool.Config) { cfg.TaskObserver = c })
			on = p
		} else {
			p, err = b.newPool(g, nil)
			off = p
		}
		if err != nil {
			return err
		}
		defer closePool(p)
	}
	c.Watch(on)
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		return err
	}
	warm := inputs[:min(len(inputs), 10_000)]
	for _, p := range []*pool.Pool{off, on} {
		if _, err := p.Map(ctx, "square", warm); err != nil {
			return fmt.Errorf("%s: %w", g, err)
		}
	}

	// mapOn maps with the collector while a goroutine scrapes it.
	mapOn := func() (tpRun, error) {
		stop, done := make(chan struct{}), make(chan struct{})
		tick(metricsScrapeEvery, func() {
			if _, err := reg.Gather(); err == nil {
				row.Scrapes++
			}
		}, stop, done)
		m, err := timedMap(ctx, on, inputs)
		close(stop)
		<-done
		return m, err
	}
	for round := range rounds {
		order := []bool{false, true}
		if round%2 == 1 {
			order = []bool{true, false}
		}
		for _, withMetrics := range order {
			b.waitQuiet()
			var m tpRun
			var err error
			if withMetrics {
				m, err = mapOn()
				row.On, row.OnCPU, row.OnWorkerCPU = append(row.On, m.wall), append(row.OnCPU, m.hostCPU), append(row.OnWorkerCPU, m.workerCPU)
			} else {
				m, err = timedMap(ctx, off, inputs)
				row.Off, row.OffCPU, row.OffWorkerCPU = append(row.Off, m.wall), append(row.OffCPU, m.hostCPU), append(row.OffWorkerCPU, m.workerCPU)
			}
			if err != nil {
				return fmt.Errorf("%s (collector %v): %w", g, withMetrics, err)
			}
		}
	}
	counted, err := countOK(reg)
	if err != nil {
		return err
	}
	row.Counted += counted
	row.Scrapes++
	if want := len(warm) + rounds*len(inputs); counted != want {
		return fmt.Errorf("%s: the collector counted %d ok tasks of %d", g, counted, want)
	}
	return nil
}

// timedMap maps square over inputs on p and checks every result. The
// workers' CPU time is read from the kernel's scheduler statistics, to the
// nanosecond (see childrenRuntime).
func timedMap(ctx context.Context, p *pool.Pool, inputs [][]byte) (tpRun, error) {
	var rs []pool.Result
	before := childrenRuntime()
	m, err := timed(func() (err error) {
		rs, err = p.Map(ctx, "square", inputs)
		return err
	})
	m.workerCPU = cpuSince(before, childrenRuntime())
	if err != nil {
		return m, err
	}
	return m, checkResults(rs, len(inputs))
}

// childrenRuntime is the CPU time each child process has run, the sum over
// its threads of the first field of /proc/PID/task/TID/schedstat, in
// nanoseconds. /proc/PID/stat counts clock ticks of 10 ms, as much as a
// worker's share of a whole round here.
func childrenRuntime() map[int]time.Duration {
	m := map[int]time.Duration{}
	for _, pid := range children() {
		files, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/schedstat")
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			if ns, err := strconv.ParseInt(strings.Fields(string(b) + " 0")[0], 10, 64); err == nil {
				m[pid] += time.Duration(ns)
			}
		}
	}
	return m
}

// countOK reads safepool_tasks_total{status="ok"} from reg.
func countOK(reg *prometheus.Registry) (int, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != "safepool_tasks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "status" && l.GetValue() == "ok" {
					return int(m.GetCounter().GetValue()), nil
				}
			}
		}
	}
	return 0, nil
}

func (p *report) metricsCost() {
	r := p.r
	n, rounds := r.Options.metricsSize()
	p.f("%s: Prometheus collector on and off, %d workers\n\n", Sections[10], r.Options.Workers)
	if p.skipped(ScenarioMetrics, len(r.Metrics) == 0) {
		return
	}
	p.f("Two pools per guest map square over the same %s integers, one with `metrics.Collector` as `Config.TaskObserver` (and `Watch`ed, gathered every %s while it maps) and one without; ", fmtCount(n), fmtDur(metricsScrapeEvery))
	p.f("they take turns, in alternating order, %d rounds of short maps, so that the two maps of a round see about the same load from elsewhere, in %d blocks that each make the two pools anew (in alternating order), so that a pool whose workers the scheduler happens to place badly does not bias one side. ", rounds, min(metricsBlocks, rounds))
	p.f("\"on ÷ off\" is the median over the rounds of each round's throughput ratio, with a 95%% confidence interval of that median (from the rounds' order statistics, with no assumption about their distribution), and the ratios' quartiles, which show how much load from elsewhere moves a round. ")
	p.f("The goal is a cost of at most %.0f%%: met when the whole interval is within it, not met when the whole interval is beyond it, and not judged when the interval straddles it (too noisy to tell). ", 100*goalMetricsCost)
	p.f("Host CPU is the harness process's CPU time per task (rusage), where the collector runs, and worker CPU the workers' (from /proc/PID/task/*/schedstat), medians of the rounds; both also count the time each side polls its pipe before it sleeps, which varies with the load. ")
	p.f("Every result is checked and the collector's count of ok tasks must match.\n\n")
	var rows [][]string
	for _, m := range r.Metrics {
		x := m.Ratio()
		lo, hi := m.RatioInterval()
		q1, q3 := m.WallSpread()
		rows = append(rows, []string{guestLabel(m.Guest), fmtCount(m.Tasks), fmt.Sprint(len(m.On)),
			fmtUs(perTask(median(m.Off), m.Tasks)), fmtUs(perTask(median(m.On), m.Tasks)),
			fmt.Sprintf("%.3f×", x), fmt.Sprintf("%.3f–%.3f", lo, hi), fmt.Sprintf("%.3f–%.3f", q1, q3),
			fmtUs(perTask(median(m.OffCPU), m.Tasks)), fmtUs(perTask(median(m.OnCPU), m.Tasks)),
			fmtUs(perTask(median(m.OffWorkerCPU), m.Tasks)), fmtUs(perTask(median(m.OnWorkerCPU), m.Tasks)),
			fmt.Sprint(m.Scrapes), yesNo(m.Correct)})
	}
	table(p.w, []string{"guest", "tasks per map", "rounds", "off µs/task (median)", "on µs/task (median)",
		"on ÷ off throughput", "95% interval", "quartiles", "host CPU µs/task off", "on", "worker CPU µs/task off", "on",
		"scrapes", "counts correct"}, rows)
}

// metricsTooNoisy marks a metrics cost the run could not judge.
const metricsTooNoisy = "too noisy to judge"

// metricsTargets judges the collector's cost on every guest.
func metricsTargets(r *Results) []Target {
	const name = "Metrics cost: Prometheus collector on ÷ off throughput"
	goal := fmt.Sprintf("≥ %.0f%% (cost ≤ %.0f%%)", 100*(1-goalMetricsCost), 100*goalMetricsCost)
	var ts []Target
	for _, g := range r.Options.Guests {
		t := Target{Name: name, Scope: guestLabel(g), Goal: goal, Measured: notMeasured(r, ScenarioMetrics, false)}
		for _, m := range r.Metrics {
			if m.Guest == g && len(m.On) > 0 {
				x := m.Ratio()
				lo, hi := m.RatioInterval()
				t.Measured = fmt.Sprintf("%.1f%% (cost %+.1f%%; median of %d paired rounds, 95%% interval %.1f–%.1f%%)",
					100*x, 100*(1-x), len(m.On), 100*lo, 100*hi)
				if t.Met = m.Met(); t.Met == nil {
					t.Measured += "; " + metricsTooNoisy
				}
			}
		}
		ts = append(ts, t)
	}
	return ts
}
