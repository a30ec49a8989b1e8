package metrics

import (
	"math"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// maxBuckets bounds the buckets of a histogram, +Inf included.
const maxBuckets = 24

// buckets are a histogram's upper bounds, both as reported (le) and as the
// whole units observed values are counted in.
type buckets struct {
	le    []float64 // reported upper bounds, ascending
	units []uint64  // le × scale, rounded: the bounds compared with
	scale float64   // units per reported unit
}

func newBuckets(le []float64, scale float64) buckets {
	if len(le)+1 > maxBuckets {
		panic("metrics: too many buckets")
	}
	b := buckets{le: le, units: make([]uint64, len(le)), scale: scale}
	for i, x := range le {
		b.units[i] = uint64(math.Round(x * scale))
	}
	return b
}

// index is the bucket of v: the first whose bound is at least v, or
// len(units) for +Inf.
func (b *buckets) index(v uint64) int {
	lo, hi := 0, len(b.units)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b.units[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// histogram counts observations in whole units, one count per bucket (not
// cumulative) and their sum. The count of observations is the sum of the
// buckets' counts, so that a scrape never sees them disagree by more than
// the observations in progress.
type histogram struct {
	counts [maxBuckets]atomic.Uint64
	sum    atomic.Uint64
}

func (h *histogram) observe(b *buckets, v uint64) {
	h.counts[b.index(v)].Add(1)
	h.sum.Add(v)
}

// histogramSum adds up the histograms of the stripes at scrape time.
type histogramSum struct {
	counts [maxBuckets]uint64
	sum    uint64
}

func (s *histogramSum) add(h *histogram) {
	for i := range h.counts {
		s.counts[i] += h.counts[i].Load()
	}
	s.sum += h.sum.Load()
}

// metric is the Prometheus histogram of s, with cumulative buckets.
func (s *histogramSum) metric(d *prometheus.Desc, b *buckets) prometheus.Metric {
	cum := make(map[float64]uint64, len(b.le))
	var n uint64
	for i, le := range b.le {
		n += s.counts[i]
		cum[le] = n
	}
	n += s.counts[len(b.le)]
	return prometheus.MustNewConstHistogram(d, n, float64(s.sum)/b.scale, cum)
}
