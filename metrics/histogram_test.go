package metrics

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/pool"
)

func TestBucketIndex(t *testing.T) {
	b := &durationBuckets
	require.Equal(t, 0, b.index(0))
	require.Equal(t, 0, b.index(1000), "1µs is at most the first bound, 1e-06 s")
	require.Equal(t, 1, b.index(1001))
	require.Equal(t, 1, b.index(4000))
	require.Equal(t, len(b.le)-1, b.index(b.units[len(b.units)-1]))
	require.Equal(t, len(b.le), b.index(b.units[len(b.units)-1]+1), "over the last bound is +Inf")
	require.Equal(t, 0, peakBuckets.index(64<<10))
	require.Equal(t, 1, peakBuckets.index(64<<10+1))

	// The table's start and its steps agree with a binary search at every
	// bound, next to it, and at every power of two.
	for _, b := range []*buckets{&durationBuckets, &peakBuckets} {
		var vs []uint64
		for _, u := range b.units {
			vs = append(vs, u-1, u, u+1)
		}
		for n := range 64 {
			vs = append(vs, 1<<n-1, 1<<n, 1<<n+1)
		}
		vs = append(vs, math.MaxUint64)
		for _, v := range vs {
			require.Equal(t, b.search(v), b.index(v), "value %d", v)
		}
	}

	// Bounds closer than a doubling take more steps, and still agree.
	near := newBuckets([]float64{10, 11, 12, 13, 1000}, 1)
	for v := range uint64(1100) {
		require.Equal(t, near.search(v), near.index(v), "value %d", v)
	}
}

// TestHistogramsAcrossStripes checks that attempts observed on different
// workers add up, bucket by bucket, in the scraped histograms.
func TestHistogramsAcrossStripes(t *testing.T) {
	c := New()
	end := func(pid int, ns int64, peak int64) pool.Event {
		e := pool.Event{Kind: pool.EventTaskEnd, Status: pool.StatusOK, WorkerPID: pid}
		e.Stats.Start = e.Stats.Start.Add(1)
		e.Stats.End = e.Stats.Start.Add(timeNs(ns))
		e.Stats.PeakMemory = peak
		return e
	}
	c.Observe(end(1, 500, 64<<10))      // first buckets
	c.Observe(end(2, 3000, 100<<10))    // second buckets
	c.Observe(end(3, 3000, 1<<40))      // peak over every bound
	c.Observe(end(4, 1_000_000_000, 0)) // no peak
	ms := gather(t, c)
	require.Len(t, ms[descDuration], 1)
	require.Len(t, ms[descPeak], 1)
	dur, peak := ms[descDuration][0].GetHistogram(), ms[descPeak][0].GetHistogram()
	require.NotNil(t, dur)
	require.NotNil(t, peak)
	require.Equal(t, uint64(4), dur.GetSampleCount())
	require.InDelta(t, 1.0000065, dur.GetSampleSum(), 1e-12)
	require.Equal(t, uint64(1), dur.GetBucket()[0].GetCumulativeCount())
	require.Equal(t, uint64(3), dur.GetBucket()[1].GetCumulativeCount())
	require.Equal(t, uint64(3), peak.GetSampleCount())
	require.Equal(t, uint64(1), peak.GetBucket()[0].GetCumulativeCount())
	require.Equal(t, uint64(2), peak.GetBucket()[1].GetCumulativeCount())
	require.Equal(t, uint64(2), peak.GetBucket()[len(peak.GetBucket())-1].GetCumulativeCount(), "the largest peak is only in +Inf")
}

func timeNs(ns int64) time.Duration { return time.Duration(ns) }

// gather collects c and returns each metric written out, by its Desc.
func gather(t *testing.T, c *Collector) map[*prometheus.Desc][]*dto.Metric {
	t.Helper()
	ch := make(chan prometheus.Metric, 256)
	go func() { c.Collect(ch); close(ch) }()
	ms := map[*prometheus.Desc][]*dto.Metric{}
	for m := range ch {
		d := &dto.Metric{}
		require.NoError(t, m.Write(d))
		ms[m.Desc()] = append(ms[m.Desc()], d)
	}
	return ms
}

// TestObserveTasksBatch checks that a batch of records counts each as its
// flags say: an attempt's end (attempts, histograms), a final result
// (tasks), or both.
func TestObserveTasksBatch(t *testing.T) {
	c := New()
	c.ObserveTasks([]pool.TaskRecord{
		{Ended: true, Final: true, Status: pool.StatusOK, WorkerPID: 3, Duration: 500, PeakMemory: 64 << 10},
		{Ended: true, Status: pool.StatusKilled, WorkerPID: 3, Duration: -1},
		{Final: true, Status: pool.StatusKilled, WorkerPID: 4, Duration: -1},
		{Ended: true, Final: true, Status: pool.StatusOK, WorkerPID: 4, Duration: 3000},
	})
	c.ObserveTasks(nil)
	ms := gather(t, c)
	counters := map[string]float64{}
	for name, desc := range map[string]*prometheus.Desc{"tasks": descTasks, "attempts": descAttempts} {
		for _, d := range ms[desc] {
			counters[name+"/"+d.GetLabel()[0].GetValue()] = d.GetCounter().GetValue()
		}
	}
	require.Len(t, ms[descDuration], 1)
	dur := ms[descDuration][0].GetHistogram()
	require.Equal(t, map[string]float64{
		"tasks/ok": 2, "tasks/killed": 1, "attempts/ok": 2, "attempts/killed": 1,
		"tasks/error": 0, "attempts/error": 0, "tasks/memory_limit": 0, "attempts/memory_limit": 0,
		"tasks/timeout": 0, "attempts/timeout": 0, "tasks/not_run": 0,
	}, counters)
	require.Equal(t, uint64(2), dur.GetSampleCount(), "an attempt whose duration is not known is not in the histogram")
	require.InDelta(t, 3.5e-6, dur.GetSampleSum(), 1e-15)
}
