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
