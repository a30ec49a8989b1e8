package pool

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/safepool/safepool/internal/hostconn"
	"github.com/safepool/safepool/internal/wire"
)

// driver owns one worker slot: it keeps a worker process alive, feeds it
// batches from the queue and turns what comes back into outcomes. One
// goroutine runs loop; other goroutines only read flights (under mu) to
// decide whether to kill the worker.
type driver struct {
	l *local

	mu      sync.Mutex
	wk      *hostconn.Conn
	flights []*flight   // batches sent and not fully answered, oldest first
	hung    atomic.Bool // the hang watchdog killed the worker
	stopped bool        // killIf killed the worker: its running task may be another run's
	born    time.Time   // when the current worker finished its handshake
	proven  bool        // the current worker delivered a result or stayed up for calm
	ran     int         // tasks run by the current worker
	frame   []wire.Task
	got     []*job        // receive's jobs of one message of results, reused
	obs     obsBuf        // the TaskObserver's records of receive's outcomes
	out     outcome       // the outcome receive hands the sink, filled anew for each result
	wake    chan struct{} // capacity 1; the queue wakes this driver through it
}

// flight is one batch in flight. Its tasks have consecutive IDs, so a
// result finds its job by subtraction, not by a map lookup per task.
type flight struct {
	base uint64 // ID of jobs[0]
	jobs []*job // a job is set to nil once it has its result
	left int    // jobs still without a result
}

// find returns the flight and index of task id, or nil. Called under mu.
func (d *driver) find(id uint64) (*flight, int) {
	for _, f := range d.flights {
		if id >= f.base && id-f.base < uint64(len(f.jobs)) {
			return f, int(id - f.base)
		}
	}
	return nil, 0
}

// pending calls fn for every job in flight without a result, in send
// order. Called under mu.
func (d *driver) pending(fn func(*job)) {
	for _, f := range d.flights {
		for _, j := range f.jobs {
			if j != nil {
				fn(j)
			}
		}
	}
}

// maxBatchesInFlight lets a worker start the next batch while the host
// handles the last one's results.
const maxBatchesInFlight = 2

func (d *driver) loop() {
	defer d.l.wg.Done()
	for {
		if d.wk == nil {
			if d.l.stopping() {
				return
			}
			wk := d.l.takeSpare()
			if wk == nil {
				var err error
				if wk, err = d.l.startWorker(); err != nil {
					continue
				}
			}
			d.mu.Lock()
			d.wk, d.ran, d.born, d.proven = wk, 0, time.Now(), false
			d.hung.Store(false)
			d.mu.Unlock()
		}
		if d.fill() {
			// A lone batch with nothing queued behind it: someone is
			// waiting for just this answer (an Apply), so poll for it
			// rather than sleep. A busy pool does not poll, to leave the
			// CPUs to its workers.
			d.wk.SpinReads(len(d.flights) == 1 && d.l.q.empty())
			d.receive()
			continue
		}
		// Nothing in flight: wait for work, the worker's death, or the end.
		if d.recycleDue() {
			d.l.q.unwait(d.wake) // registered early by receive, perhaps
			d.retire()
			continue
		}
		if !d.l.q.wait(d.wake) {
			continue // work arrived meanwhile
		}
		select {
		case <-d.calm():
			// Still registered as idle: the next wait is a no-op.
			d.prove()
		case <-d.wake:
		case <-d.wk.Exited():
			d.l.q.unwait(d.wake)
			d.receive() // reports the death
		case <-d.l.quit:
			d.l.q.unwait(d.wake)
			d.retire()
			return
		}
	}
}

// fill sends batches until maxBatchesInFlight are out or the queue is
// empty. It reports whether anything is in flight. The first batch may
// block until the worker takes it; a batch queued behind a running one is
// taken only while at least Workers jobs wait (fewer are for the idle
// workers: a push woke them, and they have not popped yet), and sent only
// if it fits in the pipe (see worker.TrySend), else its jobs go back to
// the front of the queue, for this worker or another.
func (d *driver) fill() bool {
	for len(d.flights) < maxBatchesInFlight && !d.recycleDue() {
		if len(d.flights) > 0 && !d.l.q.holds(d.l.cfg.Workers) {
			break
		}
		most := d.l.cfg.BatchSize
		if m := d.l.cfg.MaxTasksPerWorker; m > 0 {
			most = min(most, m-d.ran) // a recycled worker runs no more than its share
		}
		jobs := d.l.q.pop(most, d.l.cfg.Workers, d.wake)
		if len(jobs) == 0 {
			break
		}
		n := uint64(len(jobs))
		f := &flight{base: d.l.nextID.Add(n) - n + 1, jobs: jobs, left: len(jobs)}
		d.frame = d.frame[:0]
		for i, j := range jobs {
			j.id = f.base + uint64(i)
			t := wire.Task{ID: j.id, Func: j.run.fn, Input: j.input, Timeout: j.run.timeout}
			if j.memLimit != d.l.cfg.MemoryLimit {
				t.MemoryLimit = uint64(j.memLimit)
			}
			d.frame = append(d.frame, t)
		}
		send := d.wk.Send
		if len(d.flights) > 0 {
			send = d.wk.TrySend
		}
		d.mu.Lock()
		d.flights = append(d.flights, f)
		d.mu.Unlock()
		err := send(d.frame)
		clear(d.frame) // do not keep inputs alive
		if errors.Is(err, hostconn.ErrNoRoom) {
			d.mu.Lock()
			d.flights = d.flights[:len(d.flights)-1]
			d.mu.Unlock()
			d.l.q.pushFront(jobs)
			break
		}
		d.ran += len(jobs)
		if err != nil {
			break // the worker is dead; receive reports it
		}
	}
	return len(d.flights) > 0
}

// recycleDue reports whether the worker has run its MaxTasksPerWorker.
func (d *driver) recycleDue() bool {
	m := d.l.cfg.MaxTasksPerWorker
	return m > 0 && d.ran >= m
}

// receive handles one event from the worker.
func (d *driver) receive() {
	ev := d.wk.Recv()
	switch {
	case ev.Death != nil:
		d.onDeath(ev.Death)
	case ev.HostCall != nil:
		d.hostCall(ev.HostCall) // hostfunc.go
	case ev.Started != 0:
		d.mu.Lock()
		var j *job
		if f, i := d.find(ev.Started); f != nil {
			j = f.jobs[i]
		}
		d.mu.Unlock()
		if j != nil {
			d.l.emit(Event{Kind: EventTaskStart, WorkerPID: d.wk.PID(), Index: j.index, Func: j.run.fn, Attempt: j.attempts + 1, Map: j.run.id, ctx: j.run.ctx, job: j})
		}
	default:
		pid := d.wk.PID()
		d.prove()
		// When these are the last results in flight, go on the idle stack
		// before delivering them: a caller that sends its next task as
		// soon as it has this answer (Apply in a loop) then gets this
		// worker, which is still polling its pipe, and not one that went
		// to sleep long ago.
		d.mu.Lock()
		left := 0
		for _, f := range d.flights {
			left += f.left
		}
		d.mu.Unlock()
		if left == len(ev.Results) && !d.recycleDue() {
			d.l.q.wait(d.wake)
		}
		// The jobs of all the results are taken under one lock, then
		// delivered outside it.
		jobs := d.got[:0]
		d.mu.Lock()
		for i := range ev.Results {
			var j *job
			if f, k := d.find(ev.Results[i].ID); f != nil && f.jobs[k] != nil {
				j, f.jobs[k] = f.jobs[k], nil
				if f.left--; f.left == 0 {
					d.flights = slices.DeleteFunc(d.flights, func(g *flight) bool { return g == f })
				}
			}
			jobs = append(jobs, j)
		}
		d.mu.Unlock()
		o := &d.out
		for i, j := range jobs {
			if j == nil {
				continue // not ours: a worker never sends such a result
			}
			// Filled in place, field by field: built as a literal and
			// copied, the outcome's few hundred bytes cost more than
			// the rest of handing it over.
			o.job, o.obs = j, &d.obs
			wr := &ev.Results[i]
			setResult(&o.res, j, wr, pid)
			o.dur, o.durKnown = max(time.Duration(wr.End-wr.Start), 0), true
			d.l.sink(o)
		}
		*o = outcome{} // keep no output or job alive
		d.obs.flush()
		clear(jobs)
		d.got = jobs[:0]
		if d.l.delivered != nil {
			d.l.delivered()
		}
	}
}

// setResult sets res to the result wr of j's attempt on worker pid. Every
// field is written (those wr does not have to zero), so res may hold the
// last task's result.
func setResult(res *Result, j *job, wr *wire.Result, pid int) {
	*res = Result{
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
func (d *driver) onDeath(gone *hostconn.Death) {
	pid := d.wk.PID()
	d.mu.Lock()
	var blamed *job
	var innocent []*job
	d.pending(func(j *job) {
		if j.id == gone.Running {
			blamed = j
		} else {
			innocent = append(innocent, j)
		}
	})
	if d.stopped && blamed != nil && !blamed.run.finished() {
		// The pool stopped this worker to end another run: the task it was
		// running is innocent, and goes first.
		innocent = append([]*job{blamed}, innocent...)
		blamed = nil
	}
	stopped := d.stopped || d.l.stopping()
	d.stopped = false
	d.flights = nil
	wk := d.wk
	d.wk = nil
	hung := d.hung.Load()
	d.mu.Unlock()
	wk.Release()

	// The reason is one line; a dump that came with it (a fatal message's
	// later lines, the worker's own stderr) goes to the result's log.
	reason := "worker " + gone.Exit.String()
	var log []byte
	if gone.Fatal != nil {
		msg, rest, _ := strings.Cut(gone.Fatal.Message, "\n")
		reason += ": " + msg
		log = append(log, rest...)
	}
	if gone.Stderr != "" {
		log = append(log, gone.Stderr...)
	}
	d.l.emit(Event{Kind: EventWorkerExit, WorkerPID: pid, Reason: reason, Cause: deathCause(gone.Exit, hung, stopped), Signal: gone.Exit.SignalName()})
	d.l.q.pushFront(innocent)
	if blamed == nil {
		// A worker that dies with no task to blame before it proved it can
		// run tasks is a start-up that failed: the breaker counts it, and
		// the next start waits out the backoff.
		if !d.proven && !d.l.stopping() {
			d.l.unprovenDeath(gone, time.Since(d.born))
		}
		return
	}
	res := Result{
		Index:  blamed.index,
		Status: StatusKilled,
		Error:  reason + " while running the task",
		Log:    log,
		Stats: Stats{
			Start:       time.Unix(0, gone.Since),
			End:         time.Now(),
			WorkerPID:   pid,
			MemoryLimit: blamed.memLimit,
		},
	}
	if hung {
		res.Status = StatusTimeout
		res.Error = fmt.Sprintf("worker stopped answering; killed %s after the task's timeout of %s", hangGrace, d.l.cfg.Timeout)
	}
	d.l.sink(&outcome{job: blamed, res: res, obs: &d.obs, death: &death{Signal: gone.Exit.SignalName(), ExitCode: gone.Exit.Code, Hung: hung}})
	d.obs.flush()
	if d.l.delivered != nil {
		d.l.delivered()
	}
}

// calm returns a channel that fires when the current worker has been up for
// calm, while the pool is counting failed start-ups; otherwise nil, which
// never fires.
func (d *driver) calm() <-chan time.Time {
	if d.proven || !d.l.health.failing() {
		return nil
	}
	return time.After(time.Until(d.born.Add(calm)))
}

// prove records that the current worker can run tasks: it delivered a
// result or stayed up for calm. That ends a run of failed start-ups.
func (d *driver) prove() {
	if !d.proven {
		d.proven = true
		d.l.health.succeed()
	}
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
	d.l.stopWorker(wk, "worker retired")
}

// stopWorker stops an idle worker gracefully: it exits when its input
// closes, or is killed after 5 s.
func (l *local) stopWorker(wk *hostconn.Conn, reason string) {
	wk.Stop()
	select {
	case <-wk.Exited():
	case <-time.After(5 * time.Second):
		wk.Kill()
	}
	wk.Release()
	l.emit(Event{Kind: EventWorkerExit, WorkerPID: wk.PID(), Reason: reason, Cause: "retired"})
}

// killIf kills the worker when it runs a task of r.
func (d *driver) killIf(r *run) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.wk == nil {
		return
	}
	kill := false
	d.pending(func(j *job) { kill = kill || j.run == r })
	if kill {
		d.stopped = true
		d.wk.Kill()
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
	if now.Sub(time.Unix(0, since)) > d.l.cfg.Timeout+hangGrace {
		d.hung.Store(true)
		d.wk.Kill()
	}
}
