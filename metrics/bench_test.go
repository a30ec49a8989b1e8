package metrics_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/safepool/safepool/internal/enginetest"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/metrics"
	"github.com/safepool/safepool/pool"
)

// BenchmarkMapCollector measures the collector's cost: a map of 50,000
// squares on two workers, without and with the collector watching, on the
// Go SDK guest and on the WAT guest (whose tasks cost almost nothing, so
// that the pool's own cost, and the collector's, weigh most). Compare the
// ns/task of "off" and "on" run side by side.
func BenchmarkMapCollector(b *testing.B) {
	const n = 50_000
	inputs := enginetest.Ints(n)
	for _, module := range []string{"tasks", "wsquare"} {
		for _, on := range []bool{false, true} {
			name := module + "/off"
			if on {
				name = module + "/on"
			}
			b.Run(name, func(b *testing.B) {
				cfg := pool.Config{Module: testguest.Path(b, module), Workers: 2, CacheDir: enginetest.CacheDir(b)}
				c := metrics.New()
				if on {
					cfg.Observer = c.Observe
				}
				p, err := pool.New(context.Background(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				c.Watch(p)
				ctx := context.Background()
				if _, err := p.Map(ctx, "square", inputs[:1000]); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if _, err := p.Map(ctx, "square", inputs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/task")
			})
		}
	}
}

// BenchmarkObserve measures the collector's own cost per task: the two
// events an ok task brings (its attempt's end and its final result), from
// goroutines that each stand for one worker, as in a pool.
func BenchmarkObserve(b *testing.B) {
	c := metrics.New()
	var pids atomic.Int64
	pids.Store(4000)
	b.RunParallel(func(pb *testing.PB) {
		pid := int(pids.Add(1))
		end := pool.Event{Kind: pool.EventTaskEnd, Status: pool.StatusOK, WorkerPID: pid}
		end.Stats.Start = time.Unix(0, 1_000_000)
		end.Stats.End = end.Stats.Start.Add(1500 * time.Nanosecond)
		end.Stats.PeakMemory = 2 << 20
		final := pool.Event{Kind: pool.EventTaskFinal, Status: pool.StatusOK, WorkerPID: pid}
		for pb.Next() {
			c.Observe(end)
			c.Observe(final)
		}
	})
}
