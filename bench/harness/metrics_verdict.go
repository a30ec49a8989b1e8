package harness

import (
	"math"
	"slices"
	"time"
)

// The metrics scenario judges the collector's cost from paired rounds: in
// each round the pool with the collector and the pool without map the same
// inputs one after the other, so that the two see about the same load from
// elsewhere, and each round gives one ratio. Two ratios are kept:
//
//   - the throughput ratio, on ÷ off: the wall times' inverse ratio. It is
//     what the goal speaks of, but on a shared machine the wall time of a
//     short map moves by ±10% with what else runs, so that its interval
//     often straddles the goal.
//   - the CPU ratio, off ÷ on: the CPU time of a map without the collector
//     ÷ with it, the harness process's (rusage, where the pool and the
//     collector run) plus the workers' (schedstat). A map of small tasks
//     keeps the cores busy (two workers and the host side on two cores),
//     so that its throughput is the cores ÷ the CPU time a task takes in
//     all, and the throughput the collector costs is the CPU it adds ÷
//     that total: this ratio. Load from elsewhere moves a map's CPU time
//     much less than its wall time (it still moves it: caches are shared,
//     and each side polls its pipe for a while before it sleeps), so that
//     this ratio can tell a cost of 1% from one of 3% on a busy machine.
//
// The rounds of a block share its two pools, and a pool's placement on the
// cores moves its CPU time per task by up to ±10% for its whole life: the
// rounds of a block are not independent, and an interval over the rounds
// would be too narrow. The unit is the block: its median ratio (see
// units).
//
// Each ratio is judged the same way: the median over the blocks, with a
// 95% interval of that median from the blocks' order statistics; met when
// the whole interval is at or above 1 - goalMetricsCost, not met when it is
// wholly below, and not judged (too noisy) when it straddles it.
//
// The control, a third pool without the collector that takes its turns
// with the other two, gives the same CPU ratio between the two pools
// without it (off ÷ control): an A/A comparison, which would be 1 if the
// harness made no error. Its interval is the harness's own error, measured
// in the same run; when it reaches beyond 1 ± goalMetricsCost, the harness
// cannot tell a cost of the goal's size from no cost, and the CPU verdict
// is "too noisy" whatever the collector's interval says.

// Ratio is the throughput with the collector ÷ without: the median over
// the blocks of each block's median over its rounds' pairs, so that a
// burst of load from elsewhere weighs on one round only.
func (m MetricsCost) Ratio() float64 { return quantile(m.units(m.wallRatios()), 0.5) }

// WallSpread is the lower and upper quartile of the rounds' throughput
// ratios: how far load from elsewhere moves them.
func (m MetricsCost) WallSpread() (lo, hi float64) {
	rs := m.wallRatios()
	return quantile(rs, 0.25), quantile(rs, 0.75)
}

// RatioInterval is a 95% confidence interval of Ratio (see medianInterval).
func (m MetricsCost) RatioInterval() (lo, hi float64) {
	return medianInterval(m.units(m.wallRatios()))
}

// Met judges the throughput ratio against goalMetricsCost (see judge).
func (m MetricsCost) Met() *bool {
	lo, hi := m.RatioInterval()
	return judge(lo, hi, m.Correct)
}

// CPURatio is the CPU time per task without the collector ÷ with it, the
// host's and the workers' together: the median over the blocks of each
// block's median over its rounds' pairs. On a CPU-bound pool it is the
// throughput ratio the collector's CPU time allows.
func (m MetricsCost) CPURatio() float64 { return quantile(m.units(m.cpuRatios()), 0.5) }

// CPURatioInterval is a 95% confidence interval of CPURatio (see
// medianInterval).
func (m MetricsCost) CPURatioInterval() (lo, hi float64) {
	return medianInterval(m.units(m.cpuRatios()))
}

// units are the medians of rs, the rounds' ratios, block by block; the
// rounds themselves when the blocks are not known (results saved before
// they were kept) or do not add up to the rounds.
func (m MetricsCost) units(rs []float64) []float64 {
	n := 0
	for _, k := range m.BlockRounds {
		n += k
	}
	if n != len(rs) || n == 0 {
		return rs
	}
	var us []float64
	for _, k := range m.BlockRounds {
		if k > 0 {
			us = append(us, quantile(rs[:k], 0.5))
		}
		rs = rs[k:]
	}
	return us
}

// CPUMet judges the CPU ratio against goalMetricsCost (see judge): the
// verdict of the metrics cost target. When the control was measured and
// its interval reaches beyond 1 ± goalMetricsCost, it is nil (too noisy)
// unless the counts are wrong.
func (m MetricsCost) CPUMet() *bool {
	lo, hi := m.CPURatioInterval()
	v := judge(lo, hi, m.Correct)
	if v != nil && m.Correct && m.HasControl() {
		if clo, chi := m.ControlRatioInterval(); clo < 1-goalMetricsCost || chi > 1+goalMetricsCost {
			return nil
		}
	}
	return v
}

// HasControl reports whether the control pool was measured.
func (m MetricsCost) HasControl() bool { return m.controlRounds() > 0 }

// ControlRatio is the CPU time per task of the pool without the collector
// ÷ the control's, which has none either, host and workers: the median
// over the blocks of each block's median, as CPURatio. 1 if the harness
// made no error.
func (m MetricsCost) ControlRatio() float64 { return quantile(m.units(m.controlRatios()), 0.5) }

// ControlRatioInterval is a 95% confidence interval of ControlRatio (see
// medianInterval).
func (m MetricsCost) ControlRatioInterval() (lo, hi float64) {
	return medianInterval(m.units(m.controlRatios()))
}

// ExtraCPU is the median over the rounds of the CPU time per task the
// collector added (on - off, host and workers), in nanoseconds.
func (m MetricsCost) ExtraCPU() float64 {
	return m.medianPerTask(m.rounds(), func(i int) time.Duration { return m.onCPU(i) - m.offCPU(i) })
}

// ControlExtraCPU is the median over the rounds of the control's CPU time
// per task minus the pool's without the collector (control - off, host and
// workers), in nanoseconds: what the harness finds between two pools that
// differ in nothing, beside ExtraCPU.
func (m MetricsCost) ControlExtraCPU() float64 {
	return m.medianPerTask(m.controlRounds(), func(i int) time.Duration { return m.controlCPU(i) - m.offCPU(i) })
}

// HostExtraCPU and ControlHostExtraCPU are ExtraCPU and ControlExtraCPU of
// the host process alone, where the pool and the collector run.
func (m MetricsCost) HostExtraCPU() float64 {
	return m.medianPerTask(m.rounds(), func(i int) time.Duration { return m.OnCPU[i] - m.OffCPU[i] })
}

func (m MetricsCost) ControlHostExtraCPU() float64 {
	return m.medianPerTask(m.controlRounds(), func(i int) time.Duration { return m.ControlCPU[i] - m.OffCPU[i] })
}

// medianPerTask is the median over the first n rounds of d(i), round i's
// CPU time, per task, in nanoseconds.
func (m MetricsCost) medianPerTask(n int, d func(i int) time.Duration) float64 {
	var ds []float64
	for i := range n {
		ds = append(ds, perTask(d(i), m.Tasks))
	}
	return quantile(ds, 0.5)
}

// offCPU, onCPU and controlCPU are a side's CPU time in round i, host and
// workers.
func (m MetricsCost) offCPU(i int) time.Duration     { return m.OffCPU[i] + m.OffWorkerCPU[i] }
func (m MetricsCost) onCPU(i int) time.Duration      { return m.OnCPU[i] + m.OnWorkerCPU[i] }
func (m MetricsCost) controlCPU(i int) time.Duration { return m.ControlCPU[i] + m.ControlWorkerCPU[i] }

// judge is the verdict on a ratio whose 95% interval is lo–hi: false when
// the counts are wrong or the whole interval is below 1 - goalMetricsCost,
// true when the whole interval is at or above it, nil when it straddles it.
func judge(lo, hi float64, correct bool) *bool {
	switch {
	case !correct || hi < 1-goalMetricsCost:
		return met(false)
	case lo >= 1-goalMetricsCost:
		return met(true)
	}
	return nil
}

// rounds is how many rounds have all four measures.
func (m MetricsCost) rounds() int {
	return min(len(m.Off), len(m.On), len(m.OffCPU), len(m.OnCPU), len(m.OffWorkerCPU), len(m.OnWorkerCPU))
}

// controlRounds is how many rounds have the control's measures and the
// off side's.
func (m MetricsCost) controlRounds() int {
	return min(len(m.Control), len(m.ControlCPU), len(m.ControlWorkerCPU), len(m.OffCPU), len(m.OffWorkerCPU))
}

// controlRatios are the rounds' CPU ratios, off ÷ control, host and
// workers.
func (m MetricsCost) controlRatios() []float64 {
	return ratios(m.controlRounds(), m.offCPU, m.controlCPU)
}

// wallRatios are the rounds' throughput ratios, on ÷ off.
func (m MetricsCost) wallRatios() []float64 {
	return ratios(min(len(m.Off), len(m.On)), func(i int) time.Duration { return m.Off[i] }, func(i int) time.Duration { return m.On[i] })
}

// cpuRatios are the rounds' CPU ratios, off ÷ on, host and workers.
func (m MetricsCost) cpuRatios() []float64 {
	return ratios(m.rounds(), m.offCPU, m.onCPU)
}

// ratios are num(i) ÷ den(i) over the first n rounds, leaving out the
// rounds whose den is not positive.
func ratios(n int, num, den func(i int) time.Duration) []float64 {
	var rs []float64
	for i := range n {
		if d := den(i); d > 0 {
			rs = append(rs, float64(num(i))/float64(d))
		}
	}
	return rs
}

// medianInterval is a 95% confidence interval of the median of rs, free of
// any assumption about their distribution: the order statistics k and
// n+1-k, with k the largest rank for which a binomial(n, ½) count falls
// below k with probability at most 2.5%.
func medianInterval(rs []float64) (lo, hi float64) {
	if len(rs) == 0 {
		return 0, 0
	}
	s := slices.Clone(rs)
	slices.Sort(s)
	k := medianRank(len(s))
	return s[k-1], s[len(s)-k]
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

// The CPU ratio counts the workers' CPU time too, which the collector does
// not spend (it runs in the host process) but which moves with where and
// beside what the workers run: in a quiet, pinned run its interval still
// spans ±3%, as wide as the goal. The host's share narrows that down to
// where the collector runs:
//
//   - each round, the host CPU time per task of the pool with the
//     collector minus the mean of the two pools' without it (off and
//     control; off alone in results saved before the control was kept),
//   - ÷ the CPU time per task of the pool with the collector, host and
//     workers: the throughput the collector costs on these CPU-bound maps
//     if it adds nothing to the workers' CPU time,
//   - and, as for the ratios, the median over the blocks of each block's
//     median, with a 95% interval from the blocks' order statistics.
//
// What it leaves out is what the collector might add to the workers' CPU
// time (say, by answering them later, so that they poll their pipes
// longer): the CPU ratio, which counts it, is judged first, and the host's
// share decides only when that is too noisy, and only when it agrees with
// the CPU ratio: 1 - HostShare must lie within the CPU ratio's interval,
// or the workers' side moved with the collector beyond what the host's
// share can see (or the two measures disagree for another reason), and
// neither decides. The control gives the same
// share between the two pools without the collector (control - off, ÷ the
// control's CPU time per task): an A/A comparison of the host side, 0 if
// the harness made no error; when its interval reaches beyond ±
// goalMetricsCost, the host's share is not judged either.

// minShareUnits is the fewest blocks (or rounds) the host's share is
// judged on: with fewer, no pair of order statistics covers the median
// with 95% confidence (with 5, the widest covers it with 94%).
const minShareUnits = 6

// HostShare is the host CPU time per task the collector adds beyond the
// pools without it, ÷ the whole CPU time per task with it (host and
// workers): the median over the blocks of each block's median.
func (m MetricsCost) HostShare() float64 { return quantile(m.units(m.hostShares()), 0.5) }

// HostShareInterval is a 95% confidence interval of HostShare (see
// medianInterval).
func (m MetricsCost) HostShareInterval() (lo, hi float64) {
	return medianInterval(m.units(m.hostShares()))
}

// ControlHostShare and ControlHostShareInterval are HostShare and its
// interval between the control and the pool without the collector: 0 if
// the harness made no error.
func (m MetricsCost) ControlHostShare() float64 {
	return quantile(m.units(m.controlHostShares()), 0.5)
}

func (m MetricsCost) ControlHostShareInterval() (lo, hi float64) {
	return medianInterval(m.units(m.controlHostShares()))
}

// HostBeyondCPU is the median over the rounds of the host CPU time per
// task the collector adds beyond the pools without it (see hostBase), in
// nanoseconds.
func (m MetricsCost) HostBeyondCPU() float64 {
	return m.medianPerTask(m.rounds(), func(i int) time.Duration { return m.OnCPU[i] - m.hostBase(i) })
}

// HostShareMet judges the host's share against goalMetricsCost: false
// when the counts are wrong or its whole interval is above the goal, true
// when its whole interval is below it, nil when the interval straddles the
// goal, rests on fewer than minShareUnits blocks, the control's interval
// reaches beyond ± the goal, or the CPU ratio's interval leaves out
// 1 - HostShare (the workers' CPU time moved with the collector).
func (m MetricsCost) HostShareMet() *bool {
	if !m.Correct {
		return met(false)
	}
	if len(m.units(m.hostShares())) < minShareUnits {
		return nil
	}
	if lo, hi := m.CPURatioInterval(); 1-m.HostShare() < lo || 1-m.HostShare() > hi {
		return nil
	}
	if m.HasControl() {
		if clo, chi := m.ControlHostShareInterval(); clo < -goalMetricsCost || chi > goalMetricsCost {
			return nil
		}
	}
	switch lo, hi := m.HostShareInterval(); {
	case hi < goalMetricsCost:
		return met(true)
	case lo > goalMetricsCost:
		return met(false)
	}
	return nil
}

// What decided a metrics cost's verdict (see Verdict).
const (
	decidedByCounts    = "the collector's counts, which are wrong"
	decidedByCPU       = "the CPU ratio (host + workers)"
	decidedByHostShare = "the host's share (the CPU ratio too noisy)"
	decidedByNone      = "neither the CPU ratio nor the host's share"
)

// Verdict is the metrics cost target's verdict and what decided it: wrong
// counts are never met; else the CPU ratio (CPUMet) when it can tell;
// else the host's share (HostShareMet); else nil, too noisy.
func (m MetricsCost) Verdict() (*bool, string) {
	if !m.Correct {
		return met(false), decidedByCounts
	}
	if v := m.CPUMet(); v != nil {
		return v, decidedByCPU
	}
	if v := m.HostShareMet(); v != nil {
		return v, decidedByHostShare
	}
	return nil, decidedByNone
}

// hostBase is the host CPU time of round i without the collector: the
// mean of the off pool's and the control's, or the off pool's alone
// without a control.
func (m MetricsCost) hostBase(i int) time.Duration {
	if i < m.controlRounds() {
		return (m.OffCPU[i] + m.ControlCPU[i]) / 2
	}
	return m.OffCPU[i]
}

// hostShares are the rounds' host shares: (on's host CPU - hostBase) ÷
// on's CPU time, host and workers.
func (m MetricsCost) hostShares() []float64 {
	return ratios(m.rounds(), func(i int) time.Duration { return m.OnCPU[i] - m.hostBase(i) }, m.onCPU)
}

// controlHostShares are the control's: (control's host CPU - off's) ÷ the
// control's CPU time, host and workers.
func (m MetricsCost) controlHostShares() []float64 {
	return ratios(m.controlRounds(), func(i int) time.Duration { return m.ControlCPU[i] - m.OffCPU[i] }, m.controlCPU)
}
