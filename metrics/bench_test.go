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
// squares on two workers, on the Go SDK guest and on the WAT guest (whose
// tasks cost almost nothing, so that the pool's own cost, and the
// collector's, weigh most), with
//
//	off        no observer
//	event-nop  a Config.Observer that does nothing: the pool's cost of Events
//	event      the collector as Config.Observer
//	task-nop   a Config.TaskObserver that does nothing: the pool's cost of records
//	task       the collector as Config.TaskObserver, the way to use it: a
//	           pool.Tallier, whose tasks the pool counts in its Tally
//
// Compare the ns/task, and the host's CPU per task (steadier on a loaded
// machine), of the five run side by side.
func BenchmarkMapCollector(b *testing.B) {
	const n = 50_000
	inputs := enginetest.Ints(n)
	for _, module := range []string{"tasks", "wsquare"} {
		for _, mode := range []string{"off", "event-nop", "event", "task-nop", "task"} {
			b.Run(module+"/"+mode, func(b *testing.B) {
				cfg := pool.Config{Module: testguest.Path(b, module), Workers: 2, CacheDir: enginetest.CacheDir(b)}
				c := metrics.New()
				switch mode {
				case "event-nop":
					cfg.Observer = func(pool.Event) {}
				case "event":
					cfg.Observer = c.Observe
				case "task-nop":
					cfg.TaskObserver = nopObserver{}
				case "task":
					cfg.TaskObserver = c
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
				cpu := enginetest.HostCPU(b)
				for b.Loop() {
					if _, err := p.Map(ctx, "square", inputs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/task")
				// The host's CPU, where the Observer runs, is steadier than
				// the wall time on a loaded machine.
				b.ReportMetric(float64(enginetest.HostCPU(b)-cpu)/float64(b.N*n), "host-cpu-ns/task")
			})
		}
	}
}

// nopObserver is a TaskObserver that does nothing.
type nopObserver struct{}

func (nopObserver) ObserveTasks([]pool.TaskRecord) {}
func (nopObserver) Observe(pool.Event)             {}

// BenchmarkObserve measures the collector's own cost per ok task, from
// goroutines that each stand for one worker, as in a pool: as an Observer,
// the two events the task brings (its attempt's end and its final result);
// as a TaskObserver's records, its one record, handed over in batches of
// 64 (as the pool does with the results of a worker's answer) or alone
// (task-1, as when tasks are slow and each answer brings one result), as a
// TaskObserver that wraps the collector would. (A pool with the collector
// itself as its TaskObserver counts its tasks in the collector's Tally
// and calls none of this: pool's BenchmarkSettleOK/tally.)
func BenchmarkObserve(b *testing.B) {
	b.Run("event", func(b *testing.B) {
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
	})
	for _, batch := range []int{64, 1} {
		name := "task"
		if batch == 1 {
			name = "task-1"
		}
		b.Run(name, func(b *testing.B) {
			c := metrics.New()
			var pids atomic.Int64
			pids.Store(4000)
			cpu := enginetest.HostCPU(b)
			b.RunParallel(func(pb *testing.PB) {
				pid := int(pids.Add(1))
				recs := make([]pool.TaskRecord, batch)
				for i := range recs {
					recs[i] = pool.TaskRecord{Ended: true, Final: true, Status: pool.StatusOK, Attempt: 1, WorkerPID: pid,
						Duration: time.Duration(1000 + 10*i), PeakMemory: 2 << 20}
				}
				var o pool.TaskObserver = c
				// Each iteration is one record: the batch goes when full.
				n := 0
				for pb.Next() {
					if n++; n == batch {
						o.ObserveTasks(recs)
						n = 0
					}
				}
			})
			// The process's CPU time per record moves less than ns/op
			// when other work shares the cores.
			b.ReportMetric(float64(enginetest.HostCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
