package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/pool"
)

// TestHistogramsAcrossWorkers checks that attempts observed on different
// workers add up, bucket by bucket, in the scraped histograms, whose bounds
// are in seconds and bytes.
func TestHistogramsAcrossWorkers(t *testing.T) {
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
	require.Len(t, dur.GetBucket(), 14)
	require.Equal(t, 1e-06, dur.GetBucket()[0].GetUpperBound())
	require.Equal(t, 4e-06, dur.GetBucket()[1].GetUpperBound())
	require.InDelta(t, 67.108864, dur.GetBucket()[13].GetUpperBound(), 1e-12)
	require.Len(t, peak.GetBucket(), 17)
	require.Equal(t, float64(64<<10), peak.GetBucket()[0].GetUpperBound())
	require.Equal(t, float64(4<<30), peak.GetBucket()[16].GetUpperBound())
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
