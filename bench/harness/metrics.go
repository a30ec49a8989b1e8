package harness

import (
	"context"
	"fmt"
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
// and scraped while it maps), and of a second pool without it, the
// control: the three take turns.
type MetricsCost struct {
	Guest string
	Tasks int // per map
	// Off and On are the wall times of the maps without and with the
	// collector, one per round; Control those of the control pool, which
	// has no collector either (none in results saved before it was kept).
	Off, On, Control []time.Duration
	// OffCPU, OnCPU and ControlCPU are the host process's CPU time
	// (rusage), where the collector runs, one per round; OffWorkerCPU,
	// OnWorkerCPU and ControlWorkerCPU the pool's own workers'.
	OffCPU, OnCPU, ControlCPU                   []time.Duration
	OffWorkerCPU, OnWorkerCPU, ControlWorkerCPU []time.Duration
	// Counted is how many ok tasks the collector counted; Scrapes how many
	// times it was gathered.
	Counted, Scrapes int
	Correct          bool
	// Pinned says that each pool's worker k ran pinned to CPU k.
	Pinned bool
	// BlockRounds is how many rounds each block ran, in order: the rounds
	// of a block share its pools, and are judged together (see
	// metrics_verdict.go).
	BlockRounds []int
}

// MetricsLongRounds is the -rounds of make bench-metrics, which runs the
// metrics scenario alone with rounds enough to judge its goal.
const MetricsLongRounds = 27

// metricsSize is the map size and the rounds of the metrics scenario.
func (o *Options) metricsSize() (n, rounds int) {
	return max(o.ThroughputN/10, 1000), 24 * o.Rounds
}

// metricsCost is scenario 10: the cost of the Prometheus collector. On each
// guest three pools of Workers workers map square over the same inputs:
// one with the collector, one without, and a control without it either,
// taking turns (in rotating order) for several rounds, in metricsBlocks
// blocks with new pools, whose workers are pinned to the CPUs alike; each
// round's wall time and CPU time (the host's and the pool's workers') are
// kept. The control measures, in the same run, how far two pools that
// differ in nothing are apart: the error the harness makes.
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

// metricsBlocks is how many times the metrics scenario makes its pools
// anew. A pool's workers keep, for their lives, a layout in memory (and,
// unpinned, a placement on the cores) that makes them faster or slower
// than another pool's, whatever observes them. With new pools every block,
// made in rotating order, that bias falls on every side alike, and with
// many blocks the median over them can be told from it.
const metricsBlocks = 24

func (b *bench) metricsGuest(ctx context.Context, g string, inputs [][]byte, rounds int) (MetricsCost, error) {
	row := MetricsCost{Guest: g, Tasks: len(inputs), Correct: true, Pinned: true}
	blocks := min(metricsBlocks, rounds)
	// The collector's mapping time since its last scrape, carried from
	// block to block: a block's maps may take less than a second in all.
	var sinceScrape time.Duration
	for block := range blocks {
		// Spread the rounds over the blocks, the first ones taking the rest.
		n := rounds / blocks
		if block < rounds%blocks {
			n++
		}
		if err := b.metricsBlock(ctx, &row, inputs, n, block, &sinceScrape); err != nil {
			row.Correct = false
			return row, err
		}
		row.BlockRounds = append(row.BlockRounds, n)
	}
	return row, nil
}

// The three sides of the metrics scenario.
const (
	sideOff     = iota // no collector
	sideControl        // no collector either: the control
	sideOn             // the collector
	sides
)

// metricsBlock makes the three pools, in an order that rotates with block,
// warms them, pins their workers and runs rounds rounds, in an order that
// rotates with each round, adding them to row.
func (b *bench) metricsBlock(ctx context.Context, row *MetricsCost, inputs [][]byte, rounds int, block int, sinceScrape *time.Duration) error {
	g := row.Guest
	c := metrics.New()
	var ps [sides]*pool.Pool
	var workers [sides]func() map[int]time.Duration
	for i := range sides {
		side := (block + i) % sides
		var edit func(*pool.Config)
		if side == sideOn {
			edit = func(cfg *pool.Config) { cfg.TaskObserver = c }
		}
		p, err := b.newPool(g, edit)
		if err != nil {
			return err
		}
		defer closePool(p)
		ps[side] = p
	}
	c.Watch(ps[sideOn])
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		return err
	}
	warm := inputs[:min(len(inputs), 10_000)]
	for side, p := range ps {
		if _, err := p.Map(ctx, "square", warm); err != nil {
			return fmt.Errorf("%s: %w", g, err)
		}
		pids, err := pinWorkers(p)
		if err != nil {
			// Unpinned, the pools still take turns alike: the control
			// then shows how far apart that leaves them.
			row.Pinned = false
			pids = p.Snapshot().Workers
		}
		workers[side] = runtimeOf(pids)
	}

	// mapOn maps with the collector while a goroutine scrapes it, every
	// metricsScrapeEvery of the time the pool spends mapping: a map
	// shorter than that still takes its share of the scrapes (sinceScrape
	// carries the time since the last over to the next map).
	mapOn := func() (tpRun, error) {
		stop, done := make(chan struct{}), make(chan struct{})
		var last time.Time // of the last scrape during this map
		go func() {
			defer close(done)
			t := time.NewTimer(max(metricsScrapeEvery-*sinceScrape, 0))
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if _, err := reg.Gather(); err == nil {
						row.Scrapes++
					}
					last = time.Now()
					t.Reset(metricsScrapeEvery)
				}
			}
		}()
		m, err := timedMap(ctx, ps[sideOn], workers[sideOn], inputs)
		end := time.Now()
		close(stop)
		<-done
		if last.IsZero() {
			*sinceScrape += m.wall
		} else {
			*sinceScrape = end.Sub(last)
		}
		return m, err
	}
	for round := range rounds {
		// The three maps of a round run back to back, after one wait for
		// a quiet machine, so that they see about the same load.
		b.waitQuiet()
		for i := range sides {
			side := (block + round + i) % sides
			var m tpRun
			var err error
			switch side {
			case sideOn:
				m, err = mapOn()
				row.On, row.OnCPU, row.OnWorkerCPU = append(row.On, m.wall), append(row.OnCPU, m.hostCPU), append(row.OnWorkerCPU, m.workerCPU)
			case sideControl:
				m, err = timedMap(ctx, ps[side], workers[side], inputs)
				row.Control, row.ControlCPU, row.ControlWorkerCPU = append(row.Control, m.wall), append(row.ControlCPU, m.hostCPU), append(row.ControlWorkerCPU, m.workerCPU)
			default:
				m, err = timedMap(ctx, ps[side], workers[side], inputs)
				row.Off, row.OffCPU, row.OffWorkerCPU = append(row.Off, m.wall), append(row.OffCPU, m.hostCPU), append(row.OffWorkerCPU, m.workerCPU)
			}
			if err != nil {
				return fmt.Errorf("%s (collector %v): %w", g, side == sideOn, err)
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
// workers' CPU time is read by workerCPU, from the kernel's scheduler
// statistics, to the nanosecond (see runtimeOf).
func timedMap(ctx context.Context, p *pool.Pool, workerCPU func() map[int]time.Duration, inputs [][]byte) (tpRun, error) {
	var rs []pool.Result
	m, err := timedBy(workerCPU, func() (err error) {
		rs, err = p.Map(ctx, "square", inputs)
		return err
	})
	if err != nil {
		return m, err
	}
	return m, checkResults(rs, len(inputs))
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
	p.f("Three pools per guest map square over the same %s integers: one with `metrics.Collector` as `Config.TaskObserver` (and `Watch`ed, gathered every %s of the time it spends mapping, across maps shorter than that), one without, and a control without it either; ", fmtCount(n), fmtDur(metricsScrapeEvery))
	p.f("they take turns, in rotating order, %d rounds of short maps, so that the maps of a round see about the same load from elsewhere, in %d blocks that each make the pools anew (in rotating order) and pin each pool's worker k to CPU k, so that the pools do not differ by where the scheduler placed their workers (\"pinned\" says whether that worked). ", rounds, min(metricsBlocks, rounds))
	p.f("\"on ÷ off\" is the median over the blocks of each block's median throughput ratio (the rounds of a block share its pools, which keep their layout for their lives, so that the block is the unit), with a 95%% confidence interval of that median (from the blocks' order statistics, with no assumption about their distribution), and the quartiles of the rounds' ratios, which show how much load from elsewhere moves a round. ")
	p.f("Host CPU is the harness process's CPU time per task (rusage), where the pool and the collector run, and worker CPU the pool's own workers' (from /proc/PID/task/*/schedstat), medians of the rounds; both also count the time each side polls its pipe before it sleeps, which varies with the load. ")
	p.f("\"CPU off ÷ on\" is, the same way, the median over the blocks of the rounds' ratio of the CPU time, host and workers together, without the collector to with it, with its 95%% interval, and \"extra CPU\" the median over the rounds of what the collector added per task (host and workers; host alone). ")
	p.f("\"control: off ÷ control\" is the same ratio between the two pools without the collector, and its extra CPU what the control added: what the harness finds between two pools that differ in nothing, measured in the same run (1 and 0 ns if it made no error). ")
	p.f("The goal is a throughput cost of at most %.0f%%. It is judged on the CPU ratio: these maps keep both cores busy, so that their throughput is the cores ÷ the CPU time a task takes, and the throughput the collector costs is the CPU time it adds ÷ the CPU time a task takes in all; the CPU time moves much less with load from elsewhere than the wall time does. ", 100*goalMetricsCost)
	p.f("The CPU ratio is met when its whole interval is at or above %.0f%% and the control's whole interval within %.0f–%.0f%% (the harness's own error is smaller than the goal), not met when the collector's whole interval is below %.0f%%, and too noisy to tell otherwise. ", 100*(1-goalMetricsCost), 100*(1-goalMetricsCost), 100*(1+goalMetricsCost), 100*(1-goalMetricsCost))
	p.f("The workers' CPU time, which the collector does not spend (it runs in the host process) but which moves with where and beside what the workers run, makes most of that ratio's noise; so the report also gives the host's share: each round's host CPU per task with the collector minus the mean of the two pools' without it (\"host CPU beyond the pools without it\", median of the rounds), ÷ the CPU time per task, host and workers, with the collector, as a median over the blocks with its 95%% interval, and the control's share (control − off host CPU ÷ the control's CPU time), an A/A comparison of the host side, 0 if the harness made no error. ")
	p.f("It leaves out what the collector might add to the workers' CPU time (by answering them later, so that they poll longer), which the CPU ratio counts. The host's share is met when its whole interval is below %.0f%%, not met when its whole interval is above it, and too noisy to tell when it straddles it, when the control's interval reaches beyond ±%.0f%%, with fewer than %d blocks, or when the CPU ratio's interval leaves out 1 − the host's share (the two measures disagree: the workers' CPU time moved with the collector, or something else did). ", 100*goalMetricsCost, 100*goalMetricsCost, minShareUnits)
	p.f("The verdict is the CPU ratio's when it can tell, else the host's share's, else too noisy; \"decided by\" says which. The throughput ratio is judged on its interval alone beside them. ")
	p.f("Every result is checked and the collector's count of ok tasks must match.")
	if r.Options.Rounds < MetricsLongRounds {
		p.f(" %d rounds are seldom enough to tell a cost near %.0f%%: `make bench-metrics` runs this scenario alone with %d rounds, and writes [bench/metrics/RESULTS.md](metrics/RESULTS.md).", rounds, 100*goalMetricsCost, 24*MetricsLongRounds)
	}
	p.f("\n\n")
	var rows [][]string
	for _, m := range r.Metrics {
		x := m.Ratio()
		lo, hi := m.RatioInterval()
		q1, q3 := m.WallSpread()
		c := m.CPURatio()
		clo, chi := m.CPURatioInterval()
		ctl, ctlIv, ctlExtra := "—", "—", "—"
		if m.HasControl() {
			a, b := m.ControlRatioInterval()
			ctl, ctlIv = fmt.Sprintf("%.3f×", m.ControlRatio()), fmt.Sprintf("%.3f–%.3f", a, b)
			ctlExtra = fmt.Sprintf("%+.0f ns (host %+.0f)", m.ControlExtraCPU(), m.ControlHostExtraCPU())
		}
		slo, shi := m.HostShareInterval()
		ctlShare := "—"
		if m.HasControl() {
			a, b := m.ControlHostShareInterval()
			ctlShare = fmt.Sprintf("%+.2f%% (%+.2f to %+.2f%%)", 100*m.ControlHostShare(), 100*a, 100*b)
		}
		v, by := m.Verdict()
		rows = append(rows, []string{guestLabel(m.Guest), fmtCount(m.Tasks), fmt.Sprint(len(m.On)), yesNo(m.Pinned),
			fmtUs(perTask(median(m.Off), m.Tasks)), fmtUs(perTask(median(m.On), m.Tasks)),
			fmt.Sprintf("%.3f×", x), fmt.Sprintf("%.3f–%.3f", lo, hi), fmt.Sprintf("%.3f–%.3f", q1, q3), verdict(m.Met()),
			fmtUs(perTask(median(m.OffCPU), m.Tasks)), fmtUs(perTask(median(m.OnCPU), m.Tasks)),
			fmtUs(perTask(median(m.OffWorkerCPU), m.Tasks)), fmtUs(perTask(median(m.OnWorkerCPU), m.Tasks)),
			fmt.Sprintf("%.3f×", c), fmt.Sprintf("%.3f–%.3f", clo, chi), fmt.Sprintf("%+.0f ns (host %+.0f)", m.ExtraCPU(), m.HostExtraCPU()),
			ctl, ctlIv, ctlExtra, verdict(m.CPUMet()),
			fmt.Sprintf("%+.0f ns", m.HostBeyondCPU()), fmt.Sprintf("%+.2f%%", 100*m.HostShare()), fmt.Sprintf("%+.2f to %+.2f%%", 100*slo, 100*shi),
			ctlShare, verdict(m.HostShareMet()), verdict(v) + " (" + by + ")",
			fmt.Sprint(m.Scrapes), yesNo(m.Correct)})
	}
	table(p.w, []string{"guest", "tasks per map", "rounds", "pinned", "off µs/task (median)", "on µs/task (median)",
		"on ÷ off throughput", "95% interval", "quartiles", "throughput verdict",
		"host CPU µs/task off", "on", "worker CPU µs/task off", "on",
		"CPU off ÷ on", "95% interval", "extra CPU per task",
		"control: CPU off ÷ control", "95% interval", "control's extra CPU per task", "CPU verdict",
		"host CPU beyond the pools without it, per task", "host's share", "95% interval", "control's host share (95% interval)", "host-share verdict", "verdict (decided by)",
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
// time per task, which on these CPU-bound maps is the throughput it costs,
// and when that is too noisy by the host CPU it adds ÷ the CPU time a task
// takes (see metrics_verdict.go, MetricsCost.Verdict), with the throughput
// ratio beside it. The target says which measure decided.
func metricsTargets(r *Results) []Target {
	const name = "Metrics cost: Prometheus collector on ÷ off throughput, judged by CPU time per task (host + workers), else by the host's share"
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
				if m.HasControl() {
					alo, ahi := m.ControlRatioInterval()
					t.Measured += fmt.Sprintf("; control without the collector %.1f%% (%+.0f ns per task, 95%% interval %.1f–%.1f%%)",
						100*m.ControlRatio(), m.ControlExtraCPU(), 100*alo, 100*ahi)
				}
				slo, shi := m.HostShareInterval()
				t.Measured += fmt.Sprintf("; host CPU beyond the pools without it %+.0f ns per task, %+.2f%% of a task's CPU (95%% interval %+.2f to %+.2f%%)",
					m.HostBeyondCPU(), 100*m.HostShare(), 100*slo, 100*shi)
				if m.HasControl() {
					alo, ahi := m.ControlHostShareInterval()
					t.Measured += fmt.Sprintf(", control %+.2f%% (%+.2f to %+.2f%%)", 100*m.ControlHostShare(), 100*alo, 100*ahi)
				}
				var by string
				t.Met, by = m.Verdict()
				if t.Met == nil {
					t.Measured += "; " + metricsTooNoisy + ": " + by + " can tell"
				} else {
					t.Measured += "; decided by " + by
				}
			}
		}
		ts = append(ts, t)
	}
	return ts
}
