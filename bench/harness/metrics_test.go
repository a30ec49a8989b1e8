package harness

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMedianRank(t *testing.T) {
	// The ranks of the 95% interval of a median, from binomial tables.
	for n, k := range map[int]int{1: 1, 5: 1, 6: 1, 10: 2, 24: 7, 72: 28, 100: 40} {
		require.Equal(t, k, medianRank(n), "n=%d", n)
	}
}

// metricsRounds is a MetricsCost whose rounds have the given throughput
// ratios, on ÷ off.
func metricsRounds(ratios ...float64) MetricsCost {
	m := MetricsCost{Correct: true}
	for _, r := range ratios {
		m.Off = append(m.Off, time.Duration(1000*r))
		m.On = append(m.On, 1000)
	}
	return m
}

func TestMetricsVerdict(t *testing.T) {
	spread := func(center float64) MetricsCost {
		var rs []float64
		for i := range 24 {
			rs = append(rs, center+float64(i-12)*0.001)
		}
		return metricsRounds(rs...)
	}
	cheap := spread(1.0)
	require.InDelta(t, 1.0, cheap.Ratio(), 0.001)
	require.Equal(t, met(true), cheap.Met())

	costly := spread(0.9)
	require.Equal(t, met(false), costly.Met())

	// Rounds from 0.90 to 1.13: the median's interval straddles 98%.
	var wide []float64
	for i := range 24 {
		wide = append(wide, 0.90+float64(i)*0.01)
	}
	noisy := metricsRounds(wide...)
	lo, hi := noisy.RatioInterval()
	require.Less(t, lo, 0.98)
	require.Greater(t, hi, 0.98)
	require.Nil(t, noisy.Met())

	cheap.Correct = false
	require.Equal(t, met(false), cheap.Met(), "wrong counts are never met")
}

// cpuRounds is a MetricsCost whose rounds have the given CPU ratios, off ÷
// on, host and workers together, and throughput ratios spread from 0.85 to
// 1.15, too noisy to judge.
func cpuRounds(ratios ...float64) MetricsCost {
	m := MetricsCost{Correct: true, Tasks: 1000}
	for i, r := range ratios {
		m.Off = append(m.Off, time.Duration(850+300*i/max(len(ratios)-1, 1)))
		m.On = append(m.On, 1000)
		// The off side's CPU: 600 host + 800 workers; the on side's is
		// the off side's ÷ the ratio, split the same way.
		m.OffCPU = append(m.OffCPU, 600_000)
		m.OffWorkerCPU = append(m.OffWorkerCPU, 800_000)
		m.OnCPU = append(m.OnCPU, time.Duration(600_000/r))
		m.OnWorkerCPU = append(m.OnWorkerCPU, time.Duration(800_000/r))
	}
	return m
}

// around is n CPU ratios 0.0001 apart about center.
func around(center float64, n int) []float64 {
	var rs []float64
	for i := range n {
		rs = append(rs, center+float64(i-n/2)*0.0001)
	}
	return rs
}

func TestMetricsCPUVerdict(t *testing.T) {
	// Just within the goal: the whole interval of the median at or above
	// 98%, though the throughput ratio cannot tell.
	under := cpuRounds(around(0.9815, 24)...)
	require.InDelta(t, 0.9815, under.CPURatio(), 0.0002)
	lo, hi := under.CPURatioInterval()
	require.GreaterOrEqual(t, lo, 0.98)
	require.Equal(t, met(true), under.CPUMet())
	require.Nil(t, under.Met(), "the throughput ratios straddle the goal")
	// 1.4 µs ÷ 0.9815 - 1.4 µs: about 26 ns more per task.
	require.InDelta(t, 26.4, under.ExtraCPU(), 0.5)

	// Just over the goal: the whole interval below 98%.
	over := cpuRounds(around(0.9785, 24)...)
	lo, hi = over.CPURatioInterval()
	require.Less(t, hi, 0.98)
	require.Equal(t, met(false), over.CPUMet())

	// Rounds on either side of the goal: not judged.
	straddle := cpuRounds(around(0.98, 24)...)
	lo, hi = straddle.CPURatioInterval()
	require.Less(t, lo, 0.98)
	require.Greater(t, hi, 0.98)
	require.Nil(t, straddle.CPUMet())

	under.Correct = false
	require.Equal(t, met(false), under.CPUMet(), "wrong counts are never met")

	// The target says met from the CPU ratio, with the throughput beside.
	under.Correct = true
	ts := watTargets(under)
	require.Len(t, ts, 1)
	require.Equal(t, met(true), ts[0].Met)
	require.Contains(t, ts[0].Measured, "CPU 98.1% (cost +1.9%, +26 ns per task; median of 24 paired rounds, 95% interval 98.1–98.2%)")
	require.Contains(t, ts[0].Measured, "wall throughput")
	require.NotContains(t, ts[0].Measured, metricsTooNoisy)

	ts = watTargets(straddle)
	require.Nil(t, ts[0].Met)
	require.Contains(t, ts[0].Measured, metricsTooNoisy)
}

// TestMetricsBlocks checks that the rounds of a block count as one: a
// block whose rounds all show a cost weighs as much as a block of one round.
func TestMetricsBlocks(t *testing.T) {
	// Three blocks: nine rounds at 0.95, then one at 1.0, then one at
	// 0.99. Over the rounds the median is 0.95; over the blocks, 0.99.
	var rs []float64
	for range 9 {
		rs = append(rs, 0.95)
	}
	m := cpuRounds(append(rs, 1.0, 0.99)...)
	require.InDelta(t, 0.95, quantile(m.cpuRatios(), 0.5), 1e-6)
	m.BlockRounds = []int{9, 1, 1}
	require.InDelta(t, 0.99, m.CPURatio(), 1e-6)
	lo, hi := m.CPURatioInterval()
	require.InDelta(t, 0.95, lo, 1e-6, "three blocks: the interval is their range")
	require.InDelta(t, 1.0, hi, 1e-6)
	require.Nil(t, m.CPUMet())

	m.Guest = WATGuest
	ts := metricsTargets(&Results{Options: Options{Guests: []string{WATGuest}}, Metrics: []MetricsCost{m}})
	require.Contains(t, ts[0].Measured, "median of 3 blocks of 11 paired rounds")

	// Blocks that do not add up to the rounds are left aside.
	m.BlockRounds = []int{9, 1}
	require.InDelta(t, 0.95, m.CPURatio(), 1e-6)
}

// withControl adds to m a control whose rounds have the given CPU ratios,
// off ÷ control.
func withControl(m MetricsCost, ratios ...float64) MetricsCost {
	for i, r := range ratios {
		m.Control = append(m.Control, 1000)
		m.ControlCPU = append(m.ControlCPU, time.Duration(float64(m.OffCPU[i])/r))
		m.ControlWorkerCPU = append(m.ControlWorkerCPU, time.Duration(float64(m.OffWorkerCPU[i])/r))
	}
	return m
}

// TestMetricsControl checks that the control is reported beside the
// collector, and that a control whose interval reaches beyond 1 ± the goal
// leaves the collector unjudged, whatever its own interval says.
func TestMetricsControl(t *testing.T) {
	under := cpuRounds(around(0.9815, 24)...)
	require.False(t, under.HasControl())
	require.Equal(t, met(true), under.CPUMet(), "results saved without a control are judged as before")

	tight := withControl(under, around(0.999, 24)...)
	require.True(t, tight.HasControl())
	require.InDelta(t, 0.999, tight.ControlRatio(), 0.0002)
	require.Equal(t, met(true), tight.CPUMet())
	// 1.4 µs ÷ 0.999 - 1.4 µs: about 1.4 ns more per task.
	require.InDelta(t, 1.4, tight.ControlExtraCPU(), 0.5)

	// The control's own difference is as large as the goal: the harness
	// cannot tell a cost of 2% from none.
	loose := withControl(under, around(0.975, 24)...)
	require.Nil(t, loose.CPUMet())
	costly := withControl(cpuRounds(around(0.9785, 24)...), around(0.975, 24)...)
	require.Nil(t, costly.CPUMet())
	wrong := loose
	wrong.Correct = false
	require.Equal(t, met(false), wrong.CPUMet(), "wrong counts are never met")

	ts := watTargets(tight)
	require.Equal(t, met(true), ts[0].Met)
	require.Contains(t, ts[0].Measured, "control without the collector 99.9% (+1 ns per task, 95% interval 99.8–100.0%)")
}

// shareRounds is a MetricsCost of 24 rounds (in blocks of one) whose
// workers' CPU time moves by up to ±6% from round to round on every side,
// so that the CPU ratio (host + workers) is too noisy to judge, while the
// host CPU time per task the collector adds beyond the other two pools is
// share of the CPU time a task takes in all, give or take 0.05%, and the
// control's host CPU differs from the off pool's by ±ctlJitter of it.
func shareRounds(share, ctlJitter float64) MetricsCost {
	const n, host, workers = 24, 600_000.0, 800_000.0
	m := MetricsCost{Correct: true, Tasks: 1000}
	spread := func(i, step int) float64 { return 1 + 0.06*(float64((i*step)%n)-11.5)/11.5 }
	for i := range n {
		m.BlockRounds = append(m.BlockRounds, 1)
		m.Off, m.On, m.Control = append(m.Off, 1000), append(m.On, 1000), append(m.Control, 1000)
		m.OffCPU = append(m.OffCPU, time.Duration(host))
		m.OffWorkerCPU = append(m.OffWorkerCPU, time.Duration(workers*spread(i, 7)))
		m.ControlCPU = append(m.ControlCPU, time.Duration(host*(1+ctlJitter*(float64(i%5)-2)/2)))
		m.ControlWorkerCPU = append(m.ControlWorkerCPU, time.Duration(workers*spread(i, 5)))
		// The on side's host CPU h solves (h - base) ÷ (h + its workers) = s.
		s := share + 0.0005*float64(i%3-1)
		onWorkers := workers * spread(i, 11)
		base := float64(m.OffCPU[i]+m.ControlCPU[i]) / 2
		m.OnCPU = append(m.OnCPU, time.Duration((base+s*onWorkers)/(1-s)))
		m.OnWorkerCPU = append(m.OnWorkerCPU, time.Duration(onWorkers))
	}
	return m
}

// TestMetricsHostShare checks the verdict from the host's share when the
// CPU ratio is too noisy: met when its whole interval is below the goal,
// not met when above, and too noisy when it straddles the goal, when the
// control's host side is as noisy as the goal, with too few blocks, or
// when the CPU ratio leaves out what the host's share says.
func TestMetricsHostShare(t *testing.T) {
	cheap := shareRounds(0.01, 0.001)
	lo, hi := cheap.CPURatioInterval()
	require.Less(t, lo, 0.98, "the CPU ratio must be too noisy for this test")
	require.Greater(t, hi, 0.98)
	require.Nil(t, cheap.CPUMet())
	require.InDelta(t, 0.01, cheap.HostShare(), 0.0006)
	slo, shi := cheap.HostShareInterval()
	require.Less(t, shi, 0.02)
	require.Greater(t, slo, 0.009)
	require.InDelta(t, 0, cheap.ControlHostShare(), 0.001)
	// 1% of about 1.43 µs: about 14 ns per task.
	require.InDelta(t, 14, cheap.HostBeyondCPU(), 1)
	require.Equal(t, met(true), cheap.HostShareMet())
	v, by := cheap.Verdict()
	require.Equal(t, met(true), v)
	require.Equal(t, decidedByHostShare, by)

	costly := shareRounds(0.03, 0.001)
	require.Nil(t, costly.CPUMet())
	require.Equal(t, met(false), costly.HostShareMet())
	v, by = costly.Verdict()
	require.Equal(t, met(false), v)
	require.Equal(t, decidedByHostShare, by)

	// About the goal, give or take the spread: not judged.
	near := shareRounds(0.02, 0.001)
	slo, shi = near.HostShareInterval()
	require.Less(t, slo, 0.02)
	require.Greater(t, shi, 0.02)
	require.Nil(t, near.HostShareMet())
	v, by = near.Verdict()
	require.Nil(t, v)
	require.Equal(t, decidedByNone, by)

	// The control's host CPU moves by ±10% (±4% of a task's CPU): the harness cannot tell 2%
	// from none on the host side either.
	loose := shareRounds(0.01, 0.1)
	clo, chi := loose.ControlHostShareInterval()
	require.True(t, clo < -0.02 || chi > 0.02, "control interval %f to %f", clo, chi)
	_, shi = loose.HostShareInterval()
	require.Less(t, shi, 0.02, "the collector's own interval is below the goal: the control leaves it unjudged")
	require.Nil(t, loose.HostShareMet())

	// Five blocks give no 95% interval of their median.
	few := cheap
	few.BlockRounds = []int{5, 5, 5, 5, 4}
	require.Len(t, few.units(few.hostShares()), 5)
	require.Nil(t, few.HostShareMet())

	// A CPU ratio that is near the goal with little spread, while the
	// host's share is 0.9%: the workers' CPU time rose with the
	// collector, which the host's share does not see, and it must not
	// decide.
	straddle := cpuRounds(around(0.98, 24)...)
	require.Nil(t, straddle.CPUMet())
	_, shi = straddle.HostShareInterval()
	require.Less(t, shi, 0.01)
	require.Nil(t, straddle.HostShareMet())

	wrong := cheap
	wrong.Correct = false
	v, by = wrong.Verdict()
	require.Equal(t, met(false), v, "wrong counts are never met")
	require.Equal(t, decidedByCounts, by)

	// The target says which measure decided.
	ts := watTargets(cheap)
	require.Equal(t, met(true), ts[0].Met)
	require.Contains(t, ts[0].Measured, "host CPU beyond the pools without it +14 ns per task, +1.00% of a task's CPU")
	require.Contains(t, ts[0].Measured, "decided by "+decidedByHostShare)
	ts = watTargets(near)
	require.Nil(t, ts[0].Met)
	require.Contains(t, ts[0].Measured, metricsTooNoisy+": "+decidedByNone+" can tell")
}

// watTargets is the metrics target of a run of the WAT guest alone whose
// metrics scenario measured m.
func watTargets(m MetricsCost) []Target {
	m.Guest = WATGuest
	return metricsTargets(&Results{Options: Options{Guests: []string{WATGuest}}, Metrics: []MetricsCost{m}})
}
