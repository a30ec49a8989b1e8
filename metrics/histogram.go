package metrics

import (
	"math"
	"math/bits"

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
	// byLen is, for each bit length of a value, the first bucket whose
	// bound is at least the smallest value of that length: where index
	// starts looking.
	byLen [65]uint8
}

func newBuckets(le []float64, scale float64) buckets {
	if len(le)+1 > maxBuckets {
		panic("metrics: too many buckets")
	}
	b := buckets{le: le, units: make([]uint64, len(le)), scale: scale}
	for i, x := range le {
		b.units[i] = uint64(math.Round(x * scale))
		if i > 0 && b.units[i] < b.units[i-1] {
			panic("metrics: buckets out of order")
		}
	}
	for n := range b.byLen {
		least := uint64(0)
		if n > 0 {
			least = 1 << (n - 1)
		}
		b.byLen[n] = uint8(b.search(least))
	}
	return b
}

// index is the bucket of v: the first whose bound is at least v, or
// len(units) for +Inf. It starts at the first bucket that can hold a value
// of v's bit length and steps up from there; with bounds that at least
// double from one to the next, as both histograms' do, it steps at most
// once: a per-task cost of a table look-up and a comparison or two, where
// a binary search over the bounds costs several mispredicted branches.
func (b *buckets) index(v uint64) int {
	i := int(b.byLen[bits.Len64(v)])
	for i < len(b.units) && b.units[i] < v {
		i++
	}
	return i
}

// search is index by binary search.
func (b *buckets) search(v uint64) int {
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
