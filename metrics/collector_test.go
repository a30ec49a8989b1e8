package metrics_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/enginetest"
	"github.com/safepool/safepool/metrics"
	"github.com/safepool/safepool/pool"
)

// killOnce SIGKILLs, for real, the worker that starts task index's first
// attempt, and closes restarted when the pool has started a worker after
// that kill.
type killOnce struct {
	index     int
	mu        sync.Mutex
	killed    bool
	done      bool
	restarted chan struct{}
}

func (k *killOnce) onEvent(e pool.Event) {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case e.Kind == pool.EventTaskStart && e.Index == k.index && e.Attempt == 1 && !k.killed:
		k.killed = true
		_ = syscall.Kill(e.WorkerPID, syscall.SIGKILL)
	case e.Kind == pool.EventWorkerStart && k.killed && !k.done:
		k.done = true
		close(k.restarted)
	}
}

// values gathers c and returns every sample as "name{label=value,...}",
// histograms as name_count.
func values(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(c))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			name := mf.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[name] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[name] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// runKilled maps slow_square (30 ms a task) over 0..9 on two workers under policy, SIGKILLs
// the worker running task 3, waits for the pool to start its replacement,
// and returns the map's results, the collector, and the pool (still open).
// The collector watches as the pool's TaskObserver, or, with events, as its
// Observer.
func runKilled(t *testing.T, policy pool.Policy, events bool) ([]pool.Result, *metrics.Collector, *pool.Pool) {
	t.Helper()
	c := metrics.New()
	k := &killOnce{index: 3, restarted: make(chan struct{})}
	p := enginetest.NewPool(t, "wchaos", func(cfg *pool.Config) {
		cfg.KillPolicy = policy
		cfg.OnEvent = k.onEvent
		if events {
			cfg.Observer = c.Observe
		} else {
			cfg.TaskObserver = c
		}
	})
	c.Watch(p)
	rs, err := p.Map(context.Background(), "slow_square", enginetest.Ints(10))
	if policy == pool.Abort {
		require.ErrorIs(t, err, pool.ErrTaskKilled)
	} else {
		require.NoError(t, err)
	}
	// The pool replaces a killed worker at once; the bound is only there
	// to fail rather than hang if it never does.
	select {
	case <-k.restarted:
	case <-time.After(2 * time.Minute):
		t.Fatal("the pool did not replace the killed worker")
	}
	return rs, c, p
}

func count(rs []pool.Result, s pool.Status) float64 {
	n := 0
	for _, r := range rs {
		if r.Status == s {
			n++
		}
	}
	return float64(n)
}

func TestCollectorAfterKill(t *testing.T) {
	for _, events := range []bool{false, true} {
		name := "task_observer"
		if events {
			name = "observer"
		}
		t.Run(name, func(t *testing.T) { testCollectorAfterKill(t, events) })
	}
}

func testCollectorAfterKill(t *testing.T, events bool) {
	t.Run("skip", func(t *testing.T) {
		rs, c, p := runKilled(t, pool.Skip, events)
		require.Equal(t, pool.StatusKilled, rs[3].Status)

		live := values(t, c)
		require.Zero(t, live["safepool_tasks_queued"])
		require.Zero(t, live["safepool_tasks_in_flight"])
		require.Positive(t, live["safepool_workers_live"])
		for i := range 2 {
			if v, ok := live[fmt.Sprintf("safepool_worker_rss_bytes{worker=%d}", i)]; ok {
				require.Greater(t, v, float64(1<<20), "a worker's resident memory")
			}
		}
		require.Len(t, rssGauges(live), int(live["safepool_workers_live"]), "one RSS gauge per live worker")

		require.NoError(t, p.Close())
		v := values(t, c)
		require.Equal(t, 9.0, v["safepool_tasks_total{status=ok}"])
		require.Equal(t, 1.0, v["safepool_tasks_total{status=killed}"])
		require.Zero(t, v["safepool_tasks_total{status=not_run}"])
		require.Equal(t, 9.0, v["safepool_attempts_total{status=ok}"])
		require.Equal(t, 1.0, v["safepool_attempts_total{status=killed}"])
		require.Zero(t, v["safepool_retries_total{status=killed}"])
		require.Equal(t, 10.0, v["safepool_task_duration_seconds_count"])
		requireWorkers(t, v, 1)
	})
	t.Run("retry", func(t *testing.T) {
		rs, c, p := runKilled(t, pool.Retry, events)
		require.Equal(t, pool.StatusOK, rs[3].Status)
		require.Equal(t, 2, rs[3].Attempts)
		require.NoError(t, p.Close())
		v := values(t, c)
		require.Equal(t, 10.0, v["safepool_tasks_total{status=ok}"])
		require.Zero(t, v["safepool_tasks_total{status=killed}"])
		require.Equal(t, 10.0, v["safepool_attempts_total{status=ok}"])
		require.Equal(t, 1.0, v["safepool_attempts_total{status=killed}"])
		require.Equal(t, 1.0, v["safepool_retries_total{status=killed}"])
		require.Equal(t, 11.0, v["safepool_task_duration_seconds_count"])
		requireWorkers(t, v, 1)
	})
	t.Run("abort", func(t *testing.T) {
		rs, c, p := runKilled(t, pool.Abort, events)
		require.Equal(t, pool.StatusKilled, rs[3].Status)
		require.NoError(t, p.Close())
		v := values(t, c)
		require.Equal(t, 1.0, v["safepool_tasks_total{status=killed}"])
		require.Equal(t, count(rs, pool.StatusOK), v["safepool_tasks_total{status=ok}"])
		require.Equal(t, count(rs, pool.StatusNotRun), v["safepool_tasks_total{status=not_run}"])
		require.Equal(t, 10.0, v["safepool_tasks_total{status=ok}"]+v["safepool_tasks_total{status=killed}"]+v["safepool_tasks_total{status=not_run}"])
		require.Equal(t, 1.0, v["safepool_attempts_total{status=killed}"])
		require.Zero(t, v["safepool_retries_total{status=killed}"])
		// The abort may also stop the other worker, if it was running a
		// task of the map: that is a death the pool caused, not a kill.
		requireWorkers(t, v, 1)
	})
}

// requireWorkers checks the worker counters: kills SIGKILLs from outside,
// two workers at the start, and every later start a restart.
func requireWorkers(t *testing.T, v map[string]float64, kills float64) {
	t.Helper()
	require.Equal(t, kills, v["safepool_worker_deaths_total{cause=killed,signal=SIGKILL}"])
	require.GreaterOrEqual(t, v["safepool_worker_restarts_total"], kills)
	require.Equal(t, 2+v["safepool_worker_restarts_total"], v["safepool_worker_starts_total"])
	require.Zero(t, v["safepool_breaker_trips_total"])
}

func rssGauges(v map[string]float64) []string {
	var names []string
	for k := range v {
		if strings.HasPrefix(k, "safepool_worker_rss_bytes{") {
			names = append(names, k)
		}
	}
	return names
}
