package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/safepool/safepool/pool"
)

// Collector counts what a pool does. It is the pool's
// Config.TaskObserver, and a pool.Tallier: the pool counts the tasks in
// the collector's pool.Tally, a few additions per task inside a lock it
// takes anyway. Its Observe method, as the pool's Config.Observer
// instead, counts the same from Events, two per task, at a higher cost.
// Watch adds the gauges read from the pool when scraped. It implements
// prometheus.Collector. Its methods are safe for concurrent use. A
// Collector watches one pool.
type Collector struct {
	tally *pool.Tally
	// counting is set once a pool counts in tally: it counts the tasks
	// not run too, which Observe then leaves to it.
	counting atomic.Bool
	notRun   atomic.Uint64 // tasks not run, counted from EventNotRun
	retries  [statusSlots]atomic.Uint64
	starts   atomic.Uint64
	restarts atomic.Uint64
	trips    atomic.Uint64
	// unreplaced counts workers that ended and were not yet replaced: the
	// next start or promotion is a restart.
	unreplaced atomic.Int64

	mu     sync.Mutex
	deaths map[deathKey]uint64
	pool   *pool.Pool

	// readRSS reads a process's resident memory; a test may stand in.
	readRSS func(pid int) (int64, error)
}

var _ pool.Tallier = (*Collector)(nil)

type deathKey struct{ cause, signal string }

// statusSlots bounds the status values counted in arrays: pool statuses
// are small numbers (StatusNotRun is 16).
const statusSlots = 32

var (
	descTasks    = prometheus.NewDesc("safepool_tasks_total", "Tasks by final status.", []string{"status"}, nil)
	descAttempts = prometheus.NewDesc("safepool_attempts_total", "Attempts of tasks, by how each ended.", []string{"status"}, nil)
	descRetries  = prometheus.NewDesc("safepool_retries_total", "Retries, by the status of the attempt that failed.", []string{"status"}, nil)
	descStarts   = prometheus.NewDesc("safepool_worker_starts_total", "Worker processes that finished their handshake.", nil, nil)
	descRestarts = prometheus.NewDesc("safepool_worker_restarts_total", "Workers started, or spares promoted, to replace one that ended.", nil, nil)
	descDeaths   = prometheus.NewDesc("safepool_worker_deaths_total", "Worker processes that ended other than by retiring, by cause and signal.", []string{"cause", "signal"}, nil)
	descTrips    = prometheus.NewDesc("safepool_breaker_trips_total", "Times the start-up breaker opened.", nil, nil)
	descQueued   = prometheus.NewDesc("safepool_tasks_queued", "Tasks waiting in the pool's queue.", nil, nil)
	descInFlight = prometheus.NewDesc("safepool_tasks_in_flight", "Tasks sent to workers without a result yet.", nil, nil)
	descRunning  = prometheus.NewDesc("safepool_tasks_running", "Tasks a worker is running now.", nil, nil)
	descLive     = prometheus.NewDesc("safepool_workers_live", "Worker slots with a live worker.", nil, nil)
	descRSS      = prometheus.NewDesc("safepool_worker_rss_bytes", "Resident memory of each live worker process (VmRSS), by worker slot.", []string{"worker"}, nil)
	descDuration = prometheus.NewDesc("safepool_task_duration_seconds", "Duration of task attempts, from the worker's start of the task to its end.", nil, nil)
	descPeak     = prometheus.NewDesc("safepool_task_peak_memory_bytes", "Peak linear memory of task attempts.", nil, nil)
)

// The histograms' upper bounds: durations from 1µs to about 67s, peak
// memory from 64 KiB to 4 GiB. Each is four, or two, times the one before.
var (
	durationBounds = func() []time.Duration {
		b := make([]time.Duration, 14)
		for i := range b {
			b[i] = time.Microsecond << (2 * i)
		}
		return b
	}()
	peakBounds = func() []int64 {
		b := make([]int64, 17)
		for i := range b {
			b[i] = 64 << 10 << i
		}
		return b
	}()
)

// New returns a collector with every counter at zero.
func New() *Collector {
	t, err := pool.NewTally(durationBounds, peakBounds)
	if err != nil {
		panic(err) // the bounds above are valid
	}
	return &Collector{
		tally:   t,
		deaths:  map[deathKey]uint64{},
		readRSS: readRSS,
	}
}

// Tally makes the collector a pool.Tallier: a pool whose TaskObserver it
// is counts its tasks there, and does not call ObserveTasks.
func (c *Collector) Tally() *pool.Tally {
	c.counting.Store(true)
	return c.tally
}

// ObserveTasks counts TaskRecords: attempts' ends and tasks' final
// results. A pool whose TaskObserver is the collector counts in its Tally
// and does not call it; a TaskObserver that wraps the collector (to hand
// the records to others as well) calls it, at a few tens of nanoseconds a
// task.
func (c *Collector) ObserveTasks(ts []pool.TaskRecord) {
	if len(ts) > 0 {
		c.tally.ObserveTasks(ts)
	}
}

// Observe counts one event. It is how the collector hears of workers,
// retries and breaker trips as a TaskObserver; set as the pool's
// Config.Observer instead, it counts tasks too (from EventTaskEnd,
// EventTaskFinal and EventNotRun), at the cost of the two Events the pool
// builds per task.
func (c *Collector) Observe(e pool.Event) {
	switch e.Kind {
	case pool.EventTaskEnd:
		d := time.Duration(-1)
		if s := &e.Stats; !s.Start.IsZero() && !s.End.IsZero() {
			d = max(s.End.Sub(s.Start), 0)
		}
		c.tally.ObserveTasks([]pool.TaskRecord{{Ended: true, Status: e.Status, WorkerPID: e.WorkerPID,
			Duration: d, PeakMemory: e.Stats.PeakMemory}})
	case pool.EventTaskFinal:
		c.tally.ObserveTasks([]pool.TaskRecord{{Final: true, Status: e.Status, WorkerPID: e.WorkerPID, Duration: -1}})
	case pool.EventRetry:
		c.retries[slot(e.Status)].Add(1)
	case pool.EventNotRun:
		// A pool that counts in the tally counted these already.
		if !c.counting.Load() {
			c.notRun.Add(uint64(e.Count))
		}
	case pool.EventWorkerStart:
		c.starts.Add(1)
		c.replaced()
	case pool.EventSparePromoted:
		c.replaced()
	case pool.EventWorkerExit:
		c.unreplaced.Add(1)
		if e.Cause != "retired" {
			c.mu.Lock()
			c.deaths[deathKey{e.Cause, e.Signal}]++
			c.mu.Unlock()
		}
	case pool.EventBreakerTrip:
		c.trips.Add(1)
	}
}

// replaced counts a restart when a worker that ended is not yet replaced.
func (c *Collector) replaced() {
	for {
		n := c.unreplaced.Load()
		if n <= 0 {
			return
		}
		if c.unreplaced.CompareAndSwap(n, n-1) {
			c.restarts.Add(1)
			return
		}
	}
}

// Watch makes the collector report p's queue and workers (Pool.Snapshot
// and each worker's VmRSS) when scraped. Without it those gauges are left
// out.
func (c *Collector) Watch(p *pool.Pool) {
	c.mu.Lock()
	c.pool = p
	c.mu.Unlock()
}

func slot(s pool.Status) int {
	if int(s) < statusSlots {
		return int(s)
	}
	return 0
}

// statuses are the statuses reported even before they happen, so that a
// rate over them starts at zero.
var statuses = []pool.Status{pool.StatusOK, pool.StatusError, pool.StatusKilled, pool.StatusMemoryLimit, pool.StatusTimeout, pool.StatusNotRun}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTasks, descAttempts, descRetries, descStarts, descRestarts, descDeaths,
		descTrips, descQueued, descInFlight, descRunning, descLive, descRSS, descDuration, descPeak} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	n := c.tally.Read()
	n.Tasks[pool.StatusNotRun] += c.notRun.Load()
	for i := range statusSlots {
		s := pool.Status(i)
		t, a, r := n.Tasks[s], n.Attempts[s], c.retries[i].Load()
		if t+a+r == 0 && !isKnown(s) {
			continue
		}
		name := s.String()
		counter(descTasks, t, name)
		if s != pool.StatusNotRun {
			counter(descAttempts, a, name)
		}
		if s.IsKilledTask() || s == pool.StatusError {
			counter(descRetries, r, name)
		}
	}
	counter(descStarts, c.starts.Load())
	counter(descRestarts, c.restarts.Load())
	counter(descTrips, c.trips.Load())
	c.mu.Lock()
	for k, v := range c.deaths {
		counter(descDeaths, v, k.cause, k.signal)
	}
	p := c.pool
	c.mu.Unlock()
	ch <- histogramMetric(descDuration, &n.Duration, 1e9)
	ch <- histogramMetric(descPeak, &n.PeakMemory, 1)
	if p == nil {
		return
	}
	snap := p.Snapshot()
	gauge(descQueued, float64(snap.Queued))
	gauge(descInFlight, float64(snap.InFlight))
	gauge(descRunning, float64(snap.Running))
	live := 0
	for i, pid := range snap.Workers {
		if pid == 0 {
			continue
		}
		live++
		if rss, err := c.readRSS(pid); err == nil {
			gauge(descRSS, float64(rss), strconv.Itoa(i))
		}
	}
	gauge(descLive, float64(live))
}

func isKnown(s pool.Status) bool {
	for _, k := range statuses {
		if k == s {
			return true
		}
	}
	return false
}
