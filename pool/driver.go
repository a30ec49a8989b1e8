package pool

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/safepool/safepool/internal/wire"
	"github.com/safepool/safepool/internal/worker"
)

// driver owns one worker slot: it keeps a worker process alive, feeds it
// batches from the queue and turns what comes back into outcomes. One
// goroutine runs loop; other goroutines only read inflight (under mu) to
// decide whether to kill the worker.
type driver struct {
	p *Pool

	mu       sync.Mutex
	wk       *worker.Worker
	inflight map[uint64]*job // sent and without a result
	sent     []*job          // inflight in send order
	batches  []int           // tasks left per batch in flight, oldest first
	hung     atomic.Bool     // the hang watchdog killed the worker
	born     time.Time       // when the current worker finished its handshake
	ran      int             // tasks run by the current worker
	frame    []wire.Task
}

// maxBatchesInFlight lets a worker start the next batch while the host
// handles the last one's results.
const maxBatchesInFlight = 2

func (d *driver) loop() {
	defer d.p.wg.Done()
	for {
		if d.wk == nil {
			if d.p.stopping() {
				return
			}
			wk, err := d.p.startWorker()
			if err != nil {
				if d.p.breakerOpen() {
					return
				}
				continue
			}
			d.mu.Lock()
			d.wk, d.ran, d.born = wk, 0, time.Now()
			d.hung.Store(false)
			d.mu.Unlock()
		}
		if d.fill() {
			d.receive()
			continue
		}
		// Nothing in flight: wait for work, the worker's death, or the end.
		if d.recycleDue() {
			d.retire()
			continue
		}
		changed := d.p.q.waitCh()
		if changed == nil {
			continue // work arrived meanwhile
		}
		select {
		case <-changed:
		case <-d.wk.Process().Exited():
			d.receive() // reports the death
		case <-d.p.quit:
			d.retire()
			return
		}
	}
}

// fill sends batches until maxBatchesInFlight are out or the queue is
// empty. It reports whether anything is in flight.
func (d *driver) fill() bool {
	for len(d.batches) < maxBatchesInFlight && !d.recycleDue() {
		jobs, _ := d.p.q.pop(d.p.cfg.BatchSize, d.p.cfg.Workers)
		if len(jobs) == 0 {
			break
		}
		d.frame = d.frame[:0]
		d.mu.Lock()
		for _, j := range jobs {
			j.id = d.p.nextID.Add(1)
			d.inflight[j.id] = j
			d.sent = append(d.sent, j)
			t := wire.Task{ID: j.id, Func: j.run.fn, Input: j.input}
			if j.memLimit != d.p.cfg.MemoryLimit {
				t.MemoryLimit = uint64(j.memLimit)
			}
			d.frame = append(d.frame, t)
		}
		d.batches = append(d.batches, len(jobs))
		d.mu.Unlock()
		d.ran += len(jobs)
		if err := d.wk.Send(d.frame); err != nil {
			break // the worker is dead; receive reports it
		}
	}
	return len(d.batches) > 0
}

// recycleDue reports whether the worker has run its MaxTasksPerWorker.
func (d *driver) recycleDue() bool {
	m := d.p.cfg.MaxTasksPerWorker
	return m > 0 && d.ran >= m
}

// receive handles one event from the worker.
func (d *driver) receive() {
	ev := d.wk.Recv()
	switch {
	case ev.Death != nil:
		d.onDeath(ev.Death)
	case ev.Started != 0:
		d.mu.Lock()
		j := d.inflight[ev.Started]
		d.mu.Unlock()
		if j != nil {
			d.p.emit(Event{Kind: EventTaskStart, WorkerPID: d.wk.PID(), Index: j.index, Func: j.run.fn, Attempt: j.attempts + 1})
		}
	default:
		pid := d.wk.PID()
		d.p.workerDelivered()
		for i := range ev.Results {
			wr := &ev.Results[i]
			d.mu.Lock()
			j := d.inflight[wr.ID]
			delete(d.inflight, wr.ID)
			if j != nil {
				d.batches[0]--
				if d.batches[0] == 0 {
					d.batches = d.batches[1:]
				}
			}
			d.mu.Unlock()
			if j == nil {
				continue // a task of a run that was aborted meanwhile
			}
			d.p.settle(j, resultFrom(j, wr, pid), "", -1)
		}
		d.mu.Lock()
		d.compactSent()
		d.mu.Unlock()
	}
}

func (d *driver) compactSent() {
	k := 0
	for _, j := range d.sent {
		if _, ok := d.inflight[j.id]; ok {
			d.sent[k] = j
			k++
		}
	}
	clear(d.sent[k:])
	d.sent = d.sent[:k]
}

func resultFrom(j *job, wr *wire.Result, pid int) Result {
	return Result{
		Index:  j.index,
		Status: Status(wr.Status),
		Output: wr.Output,
		Error:  wr.Error,
		Stats: Stats{
			Start:       time.Unix(0, wr.Start),
			End:         time.Unix(0, wr.End),
			WorkerPID:   pid,
			PeakMemory:  int64(wr.PeakMemory),
			MemoryLimit: j.memLimit,
		},
		Log: wr.Log,
	}
}

// onDeath blames the running task, sends the rest back to the queue without
// using an attempt, and frees the slot for a new worker.
func (d *driver) onDeath(death *worker.Death) {
	pid := d.wk.PID()
	d.mu.Lock()
	var blamed *job
	var innocent []*job
	for _, j := range d.sent {
		if _, ok := d.inflight[j.id]; !ok {
			continue
		}
		if j.id == death.Running {
			blamed = j
		} else {
			innocent = append(innocent, j)
		}
	}
	clear(d.inflight)
	d.sent = d.sent[:0]
	d.batches = d.batches[:0]
	wk := d.wk
	d.wk = nil
	hung := d.hung.Load()
	d.mu.Unlock()
	wk.Release()

	reason := "worker " + death.Exit.String()
	if death.Fatal != nil {
		reason += ": " + death.Fatal.Message
	}
	d.p.emit(Event{Kind: EventWorkerExit, WorkerPID: pid, Reason: reason})
	d.p.q.pushFront(innocent)
	if blamed == nil {
		// A worker that exits on its own right after starting, with no task
		// to blame, is a module (or machine) that cannot keep a worker up.
		// A signal from outside is not the module's fault.
		if !death.Exit.Signaled() && time.Since(d.born) < 2*time.Second {
			d.p.workerDiedYoung()
		}
		return
	}
	res := Result{
		Index:  blamed.index,
		Status: StatusKilled,
		Error:  fmt.Sprintf("%s while running the task", reason),
		Stats: Stats{
			Start:       time.Unix(0, death.Since),
			End:         time.Now(),
			WorkerPID:   pid,
			MemoryLimit: blamed.memLimit,
		},
	}
	if hung {
		res.Status = StatusTimeout
		res.Error = fmt.Sprintf("worker stopped answering; killed %s after the task's timeout of %s", hangGrace, d.p.cfg.Timeout)
	}
	blamed.gateHold = death.Exit.Signaled() && !hung
	d.p.settle(blamed, res, death.Exit.SignalName(), death.Exit.Code)
}

// retire stops the current worker gracefully: it finishes nothing (nothing
// is in flight) and exits when its input closes.
func (d *driver) retire() {
	d.mu.Lock()
	wk := d.wk
	d.wk = nil
	d.mu.Unlock()
	if wk == nil {
		return
	}
	wk.Stop()
	select {
	case <-wk.Process().Exited():
	case <-time.After(5 * time.Second):
		wk.Kill()
	}
	wk.Release()
	d.p.emit(Event{Kind: EventWorkerExit, WorkerPID: wk.PID(), Reason: "worker retired"})
}

// killIf kills the worker when it runs a task of r.
func (d *driver) killIf(r *run) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.wk == nil {
		return
	}
	for _, j := range d.inflight {
		if j.run == r {
			d.wk.Kill()
			return
		}
	}
}

// kill kills the worker, if any.
func (d *driver) kill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.wk != nil {
		d.wk.Kill()
	}
}

// checkHang kills a worker whose running task is past timeout + grace: the
// worker's own watchdog should have stopped it long before, so the worker
// is not answering.
func (d *driver) checkHang(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.wk == nil {
		return
	}
	id, since := d.wk.Running()
	if id == 0 || since == 0 {
		return
	}
	if now.Sub(time.Unix(0, since)) > d.p.cfg.Timeout+hangGrace {
		d.hung.Store(true)
		d.wk.Kill()
	}
}
