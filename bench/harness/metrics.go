package harness

import (
	"context"
	"fmt"
	"slices"
	"sync"
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
// collector (metrics.Collector as Config.Observer, watching the pool and
// scraped while it maps), the two taking turns.
type MetricsCost struct {
	Guest string
	Tasks int // per map
	// Off and On are the wall times of the maps without and with the
	// collector, one per round.
	Off, On []time.Duration
	// OffCPU and OnCPU are the host process's CPU time over all rounds.
	OffCPU, OnCPU time.Duration
	// Counted is how many ok tasks the collector counted; Scrapes how many
	// times it was gathered.
	Counted, Scrapes int
	Correct          bool
}

// Ratio is the throughput with the collector ÷ without: the median over
// the rounds of each round's pair, so that a burst of load from elsewhere
// weighs on one round only.
func (m MetricsCost) Ratio() float64 {
	var rs []float64
	for i := range min(len(m.Off), len(m.On)) {
		if m.On[i] > 0 {
			rs = append(rs, float64(m.Off[i])/float64(m.On[i]))
		}
	}
	if len(rs) == 0 {
		return 0
	}
	slices.Sort(rs)
	if len(rs)%2 == 1 {
		return rs[len(rs)/2]
	}
	return (rs[len(rs)/2-1] + rs[len(rs)/2]) / 2
}

// metricsSize is the map size and the rounds of the metrics scenario.
func (o *Options) metricsSize() (n, rounds int) {
	return max(o.ThroughputN/5, 1000), 4 * o.Rounds
}

// metricsCost is scenario 10: the cost of the Prometheus collector. On each
// guest two pools of Workers workers map square over the same inputs, one
// with the collector and one without, taking turns (in alternating order)
// for several rounds.
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

func (b *bench) metricsGuest(ctx context.Context, g string, inputs [][]byte, rounds int) (MetricsCost, error) {
	row := MetricsCost{Guest: g, Tasks: len(inputs)}
	off, err := b.newPool(g, nil)
	if err != nil {
		return row, err
	}
	defer closePool(off)
	c := metrics.New()
	on, err := b.newPool(g, func(cfg *pool.Config) { cfg.Observer = c.Observe })
	if err != nil {
		return row, err
	}
	defer closePool(on)
	c.Watch(on)
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		return row, err
	}
	warm := inputs[:min(len(inputs), 10_000)]
	for _, p := range []*pool.Pool{off, on} {
		if _, err := p.Map(ctx, "square", warm); err != nil {
			return row, fmt.Errorf("%s: %w", g, err)
		}
	}

	// mapOn maps with the collector while a goroutine scrapes it.
	mapOn := func() (tpRun, error) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(metricsScrapeEvery)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if _, err := reg.Gather(); err == nil {
						row.Scrapes++
					}
				}
			}
		}()
		m, err := timedMap(ctx, on, inputs)
		close(stop)
		wg.Wait()
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
				row.On, row.OnCPU = append(row.On, m.wall), row.OnCPU+m.hostCPU
			} else {
				m, err = timedMap(ctx, off, inputs)
				row.Off, row.OffCPU = append(row.Off, m.wall), row.OffCPU+m.hostCPU
			}
			if err != nil {
				return row, fmt.Errorf("%s (collector %v): %w", g, withMetrics, err)
			}
		}
	}
	if row.Counted, err = countOK(reg); err != nil {
		return row, err
	}
	row.Scrapes++
	want := len(warm) + rounds*len(inputs)
	if row.Counted != want {
		return row, fmt.Errorf("%s: the collector counted %d ok tasks of %d", g, row.Counted, want)
	}
	row.Correct = true
	return row, nil
}

// timedMap maps square over inputs on p and checks every result.
func timedMap(ctx context.Context, p *pool.Pool, inputs [][]byte) (tpRun, error) {
	var rs []pool.Result
	m, err := timed(func() (err error) {
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
	p.f("Two pools per guest map square over the same %s integers, one with `metrics.Collector` as `Config.Observer` (and `Watch`ed, gathered every %s while it maps) and one without; ", fmtCount(n), fmtDur(metricsScrapeEvery))
	p.f("they take turns, in alternating order, %d rounds. \"on ÷ off\" is the median over the rounds of each round's throughput ratio; the goal is a cost of at most %.0f%%. ", rounds, 100*goalMetricsCost)
	p.f("Host CPU is the harness process's CPU time per task, where the collector runs; every result is checked and the collector's count of ok tasks must match.\n\n")
	var rows [][]string
	for _, m := range r.Metrics {
		x := m.Ratio()
		rows = append(rows, []string{guestLabel(m.Guest), fmtCount(m.Tasks), fmt.Sprint(len(m.On)),
			fmtUs(perTask(median(m.Off), m.Tasks)), fmtUs(perTask(median(m.On), m.Tasks)),
			fmtUs(perTask(slices.Min(m.Off), m.Tasks)), fmtUs(perTask(slices.Min(m.On), m.Tasks)),
			fmt.Sprintf("%.3f×", x), fmt.Sprintf("%+.1f%%", 100*(1-x)),
			fmtUs(perTask(m.OffCPU, m.Tasks*len(m.Off))), fmtUs(perTask(m.OnCPU, m.Tasks*len(m.On))),
			fmt.Sprint(m.Scrapes), yesNo(m.Correct)})
	}
	table(p.w, []string{"guest", "tasks per map", "rounds", "off µs/task (median)", "on µs/task (median)", "off (best)", "on (best)",
		"on ÷ off throughput", "cost", "host CPU µs/task off", "on", "scrapes", "counts correct"}, rows)
}

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
				t.Measured = fmt.Sprintf("%.1f%% (cost %+.1f%%; median of %d paired rounds)", 100*x, 100*(1-x), len(m.On))
				t.Met = met(x >= 1-goalMetricsCost && m.Correct)
			}
		}
		ts = append(ts, t)
	}
	return ts
}
