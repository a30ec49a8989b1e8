package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/safepool/safepool/pool"
)

// histogramMetric is the Prometheus histogram of h, with cumulative
// buckets, its bounds and sum divided by scale: 1e9 for nanoseconds
// reported in seconds.
func histogramMetric(d *prometheus.Desc, h *pool.Histogram, scale float64) prometheus.Metric {
	cum := make(map[float64]uint64, len(h.Bounds))
	var n uint64
	for i, le := range h.Bounds {
		n += h.Counts[i]
		cum[float64(le)/scale] = n
	}
	n += h.Counts[len(h.Bounds)]
	return prometheus.MustNewConstHistogram(d, n, float64(h.Sum)/scale, cum)
}
