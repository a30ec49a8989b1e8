package pool

import (
	"context"
	"testing"
	"time"
)

// nopTasks is a TaskObserver that does nothing.
type nopTasks struct{}

func (nopTasks) ObserveTasks([]TaskRecord) {}
func (nopTasks) Observe(Event)             {}

// BenchmarkSettleOK measures what the pool spends on an ok attempt's
// outcome, in this process and with no worker: settle, which delivers it to
// its map, with no observer ("off"), with a Config.Observer that does
// nothing ("event": the two Events built per task) and with a
// Config.TaskObserver that does nothing ("task": the one TaskRecord,
// handed over with those of the same answer, 64 here). The
// differences are the pool's cost of reporting, apart from the observer's
// own (see metrics.BenchmarkObserve).
func BenchmarkSettleOK(b *testing.B) {
	const n = 4096
	for _, mode := range []string{"off", "event", "task"} {
		b.Run(mode, func(b *testing.B) {
			p := &Pool{hooks: &runHooks{killed: func(KilledTask) {}, stop: func(*run) {}, ended: func(*run) {}}}
			switch mode {
			case "event":
				p.cfg.Observer = func(Event) {}
			case "task":
				p.cfg.TaskObserver = nopTasks{}
			}
			r := p.newRun(context.Background(), "square", n, nil)
			r.add(b.N)
			jobs := make([]job, n)
			for i := range jobs {
				jobs[i] = job{run: r, index: i}
			}
			start := time.Unix(0, 1_000_000)
			out := []byte("4")
			for i := 0; b.Loop(); i++ {
				j := &jobs[i%n]
				j.attempts = 0
				// The answers of a worker bring 64 results each.
				p.settle(outcome{job: j, more: i%64 != 63, res: Result{Index: j.index, Status: StatusOK, Output: out,
					Stats: Stats{Start: start, End: start.Add(1500), WorkerPID: 4000 + i&1, PeakMemory: 2 << 20, MemoryLimit: 64 << 20}}})
			}
		})
	}
}
