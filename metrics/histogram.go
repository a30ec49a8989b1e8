package metrics

import (
	"math"

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
// buckets' counts. It is a stripe's, guarded by the stripe's lock.
type histogram struct {
	counts [maxBuckets]uint64
	sum    uint64
}

func (h *histogram) observe(b *buckets, v uint64) {
	h.counts[b.index(v)]++
	h.sum += v
}

// add adds the counts of o to h.
func (h *histogram) add(o *histogram) {
	for i := range o.counts {
		h.counts[i] += o.counts[i]
	}
	h.sum += o.sum
}

// metric is the Prometheus histogram of s, with cumulative buckets.
func (s *histogram) metric(d *prometheus.Desc, b *buckets) prometheus.Metric {
	cum := make(map[float64]uint64, len(b.le))
	var n uint64
	for i, le := range b.le {
		n += s.counts[i]
		cum[le] = n
	}
	n += s.counts[len(b.le)]
	return prometheus.MustNewConstHistogram(d, n, float64(s.sum)/b.scale, cum)
}
