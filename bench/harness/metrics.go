package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	// BlockRounds is how many rounds each block ran, in order: the rounds
	// of a block share its two pools, and are judged together (see
	// metrics_verdict.go).
	BlockRounds []int
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
// anew. A pool's workers keep, for their lives, a placement on the cores
// and a layout in memory that makes them faster or slower than the other
// pool's, whatever observes them: a pool's CPU time per task moves by up
// to ±10% from one block to the next with no collector on either side.
// With new pools every block, in alternating order, that bias falls on
// both sides alike, and with many blocks the median over them can be told
// from it.
const metricsBlocks = 24

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
		row.BlockRounds = append(row.BlockRounds, n)
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
	m, err := timedBy(childrenRuntime, func() (err error) {
		rs, err = p.Map(ctx, "square", inputs)
		return err
	})
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
	p.f("\"on ÷ off\" is the median over the blocks of each block's median throughput ratio (the rounds of a block share its pools, whose placement on the cores moves them together, so that the block is the unit), with a 95%% confidence interval of that median (from the blocks' order statistics, with no assumption about their distribution), and the quartiles of the rounds' ratios, which show how much load from elsewhere moves a round. ")
	p.f("Host CPU is the harness process's CPU time per task (rusage), where the pool and the collector run, and worker CPU the workers' (from /proc/PID/task/*/schedstat), medians of the rounds; both also count the time each side polls its pipe before it sleeps, which varies with the load. ")
	p.f("\"CPU off ÷ on\" is, the same way, the median over the blocks of the rounds' ratio of the CPU time, host and workers together, without the collector to with it, with its 95%% interval, and \"extra CPU\" the median over the rounds of what the collector added per task. ")
	p.f("The goal is a throughput cost of at most %.0f%%. It is judged on the CPU ratio: these maps keep both cores busy, so that their throughput is the cores ÷ the CPU time a task takes, and the throughput the collector costs is the CPU time it adds ÷ the CPU time a task takes in all; the CPU time moves much less with load from elsewhere than the wall time does. ", 100*goalMetricsCost)
	p.f("It is met when the whole interval of the CPU ratio is at or above %.0f%%, not met when the whole interval is below, and not judged when the interval straddles it (too noisy to tell); the throughput ratio is judged the same way beside it. ", 100*(1-goalMetricsCost))
	p.f("Every result is checked and the collector's count of ok tasks must match.\n\n")
	var rows [][]string
	for _, m := range r.Metrics {
		x := m.Ratio()
		lo, hi := m.RatioInterval()
		q1, q3 := m.WallSpread()
		c := m.CPURatio()
		clo, chi := m.CPURatioInterval()
		rows = append(rows, []string{guestLabel(m.Guest), fmtCount(m.Tasks), fmt.Sprint(len(m.On)),
			fmtUs(perTask(median(m.Off), m.Tasks)), fmtUs(perTask(median(m.On), m.Tasks)),
			fmt.Sprintf("%.3f×", x), fmt.Sprintf("%.3f–%.3f", lo, hi), fmt.Sprintf("%.3f–%.3f", q1, q3), verdict(m.Met()),
			fmtUs(perTask(median(m.OffCPU), m.Tasks)), fmtUs(perTask(median(m.OnCPU), m.Tasks)),
			fmtUs(perTask(median(m.OffWorkerCPU), m.Tasks)), fmtUs(perTask(median(m.OnWorkerCPU), m.Tasks)),
			fmt.Sprintf("%.3f×", c), fmt.Sprintf("%.3f–%.3f", clo, chi), fmt.Sprintf("%+.0f ns", m.ExtraCPU()), verdict(m.CPUMet()),
			fmt.Sprint(m.Scrapes), yesNo(m.Correct)})
	}
	table(p.w, []string{"guest", "tasks per map", "rounds", "off µs/task (median)", "on µs/task (median)",
		"on ÷ off throughput", "95% interval", "quartiles", "throughput verdict",
		"host CPU µs/task off", "on", "worker CPU µs/task off", "on",
		"CPU off ÷ on", "95% interval", "extra CPU per task", "CPU verdict",
		"scrapes", "counts correct"}, rows)
}

// verdict says what judge said.
func verdict(met *bool) string {
	switch {
	case met == nil:
		return metricsTooNoisy
	case *met:
		return "met"
	}
	return "not met"
}

// metricsTooNoisy marks a metrics cost the run could not judge.
const metricsTooNoisy = "too noisy to judge"

// metricsTargets judges the collector's cost on every guest: by its CPU
// time per task, which on these CPU-bound maps is the throughput it costs
// (see metrics_verdict.go), with the throughput ratio beside it.
func metricsTargets(r *Results) []Target {
	const name = "Metrics cost: Prometheus collector on ÷ off throughput, judged by CPU time per task (host + workers)"
	goal := fmt.Sprintf("≥ %.0f%% (cost ≤ %.0f%%)", 100*(1-goalMetricsCost), 100*goalMetricsCost)
	var ts []Target
	for _, g := range r.Options.Guests {
		t := Target{Name: name, Scope: guestLabel(g), Goal: goal, Measured: notMeasured(r, ScenarioMetrics, false)}
		for _, m := range r.Metrics {
			if m.Guest == g && len(m.On) > 0 {
				c := m.CPURatio()
				clo, chi := m.CPURatioInterval()
				x := m.Ratio()
				lo, hi := m.RatioInterval()
				over := fmt.Sprintf("%d paired rounds", len(m.On))
				if nb := len(m.units(m.cpuRatios())); nb != len(m.On) {
					over = fmt.Sprintf("%d blocks of %d paired rounds", nb, len(m.On))
				}
				t.Measured = fmt.Sprintf("CPU %.1f%% (cost %+.1f%%, %+.0f ns per task; median of %s, 95%% interval %.1f–%.1f%%); wall throughput %.1f%% (95%% interval %.1f–%.1f%%)",
					100*c, 100*(1-c), m.ExtraCPU(), over, 100*clo, 100*chi, 100*x, 100*lo, 100*hi)
				if t.Met = m.CPUMet(); t.Met == nil {
					t.Measured += "; " + metricsTooNoisy
				}
			}
		}
		ts = append(ts, t)
	}
	return ts
}
