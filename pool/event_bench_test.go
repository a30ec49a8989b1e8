package pool

import (
	"context"
	"sync/atomic"
	"syscall"
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
// queued in a driver's buffer and handed over after the 64 results of an
// answer), and counting in a Tally ("tally": a Tallier's, such as the
// metrics collector). The differences are the pool's cost of reporting,
// apart from a TaskObserver's own (see metrics.BenchmarkObserve); a
// Tally's is in "tally".
//
// The "parallel" ones settle the outcomes of one map from two goroutines,
// as the drivers of two workers do: what they share (the map's lock and
// counters) then moves between the cores, and what observing adds to it
// shows.
func BenchmarkSettleOK(b *testing.B) {
	for _, mode := range []string{"off", "event", "task", "tally"} {
		b.Run(mode, func(b *testing.B) {
			p, r := settleBenchPool(mode)
			cpu := processCPU(b)
			settleLoop(p, r, 0, b.Loop)
			b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
	for _, mode := range []string{"off", "task", "tally"} {
		b.Run("parallel/"+mode, func(b *testing.B) {
			p, r := settleBenchPool(mode)
			var next atomic.Int64
			b.SetParallelism(1) // one goroutine per P: GOMAXPROCS drivers
			cpu := processCPU(b)
			b.RunParallel(func(pb *testing.PB) {
				settleLoop(p, r, int(next.Add(1)), pb.Next)
			})
			b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is this process's CPU time (rusage), in nanoseconds: on a
// shared machine it moves much less with load from elsewhere than ns/op.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// settleBenchPool is a pool with only what settle needs, mode's observer,
// and a map that never ends.
func settleBenchPool(mode string) (*Pool, *run) {
	p := &Pool{hooks: &runHooks{killed: func(KilledTask) {}, stop: func(*run) {}, ended: func(*run) {}}}
	switch mode {
	case "event":
		p.cfg.Observer = func(Event) {}
	case "task":
		p.cfg.TaskObserver = nopTasks{}
	case "tally":
		p.cfg.TaskObserver = nopTasks{}
		t, err := NewTally([]time.Duration{time.Microsecond, 4 * time.Microsecond, 16 * time.Microsecond}, []int64{1 << 20, 2 << 20, 4 << 20})
		if err != nil {
			panic(err)
		}
		p.tally = t
	}
	r := p.newRun(context.Background(), "square", 4096, nil)
	r.add(1 << 60)
	return p, r
}

// settleLoop settles ok outcomes of r while next says so, as driver pid
// does: from its own jobs, 64 results per answer, its buffer handed over
// after each answer.
func settleLoop(p *Pool, r *run, pid int, next func() bool) {
	const n = 4096
	jobs := make([]job, n)
	for i := range jobs {
		jobs[i] = job{run: r, index: i}
	}
	var ob obsBuf
	start := time.Unix(0, 1_000_000)
	out := []byte("4")
	for i := 0; next(); i++ {
		j := &jobs[i%n]
		j.attempts = 0
		more := i%64 != 63
		p.settle(&outcome{job: j, obs: &ob, more: more, dur: 1500, durKnown: true, res: Result{Index: j.index, Status: StatusOK, Output: out,
			Stats: Stats{Start: start, End: start.Add(1500), WorkerPID: 4000 + pid, PeakMemory: 2 << 20, MemoryLimit: 64 << 20}}})
		if !more {
			ob.flush()
		}
	}
}
