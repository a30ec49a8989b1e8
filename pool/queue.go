package pool

import (
	"slices"
	"sync"
)

// job is one task of one run, across all its attempts.
type job struct {
	id       uint64 // unique per attempt-send; echoed by the worker
	run      *run
	index    int
	input    []byte
	attempts int // attempts that ended
	memLimit int64
	history  []Attempt
	gateHold bool   // the last failure was a signal: check the memory gate
	releases int    // times cluster agents gave it back unrun
	remoteID uint64 // on a cluster agent: the attempt's ID in its pool
}

// queue holds jobs waiting for a worker, in order. Jobs of a finished run
// are dropped when popped. Its methods are safe for concurrent use.
//
// Idle drivers wait on a stack, and a push wakes only as many of them as
// there are jobs, the most recently idle first: that driver's worker has
// just finished, so it is the one still polling its pipe (see
// proc.SpinReader) with its caches warm. Waking every driver for one job
// would send the job to whichever thread the scheduler ran first, often a
// worker that has long gone to sleep.
type queue struct {
	mu    sync.Mutex
	items []entry
	head  int
	count int             // tasks in items[head:]
	idle  []chan struct{} // idle drivers' wake channels (capacity 1), most recent last
}

// entry is one job, or a segment of a map's fresh tasks: the inputs
// [lo, hi) of run. A map of a million tasks is one entry, and its jobs are
// made as workers take them, a batch at a time, so that the host never
// holds (nor its garbage collector scans) a job per task up front.
type entry struct {
	j      *job
	run    *run
	lo, hi int
}

func (e *entry) len() int {
	if e.j != nil {
		return 1
	}
	return e.hi - e.lo
}

func (e *entry) finished() bool {
	if e.j != nil {
		return e.j.run.finished()
	}
	return e.run.finished()
}

func newQueue() *queue { return &queue{} }

// wakeLocked wakes up to n idle drivers, the most recently idle first.
func (q *queue) wakeLocked(n int) {
	for ; n > 0 && len(q.idle) > 0; n-- {
		ch := q.idle[len(q.idle)-1]
		q.idle[len(q.idle)-1] = nil
		q.idle = q.idle[:len(q.idle)-1]
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// wakeOne passes on a wake-up its receiver will not use.
func (q *queue) wakeOne() {
	q.mu.Lock()
	if q.count > 0 {
		q.wakeLocked(1)
	}
	q.mu.Unlock()
}

// push adds jobs at the back.
func (q *queue) push(js ...*job) {
	q.mu.Lock()
	for _, j := range js {
		q.items = append(q.items, entry{j: j})
	}
	q.count += len(js)
	q.wakeLocked(len(js))
	q.mu.Unlock()
}

// pushRun adds the tasks of a map, inputs [0, n) of r, at the back.
func (q *queue) pushRun(r *run, n int) {
	if n == 0 {
		return
	}
	q.mu.Lock()
	q.items = append(q.items, entry{run: r, lo: 0, hi: n})
	q.count += n
	q.wakeLocked(n)
	q.mu.Unlock()
}

// pushFront puts jobs back at the front, in their order: tasks that were
// queued on a worker that died go first, since they were due first.
func (q *queue) pushFront(js []*job) {
	if len(js) == 0 {
		return
	}
	q.mu.Lock()
	rest := q.items[q.head:]
	items := make([]entry, 0, len(js)+len(rest))
	for _, j := range js {
		items = append(items, entry{j: j})
	}
	q.items = append(items, rest...)
	q.head = 0
	q.count += len(js)
	q.wakeLocked(len(js))
	q.mu.Unlock()
}

// pop takes up to max jobs, aiming at a fair share of the queue per worker
// so that a small map spreads over every worker. It returns nil when the
// queue is empty. self is the calling driver's wake channel: a driver that
// gets jobs is no longer idle, whether or not a push woke it.
func (q *queue) pop(max, workers int, self chan struct{}) (out []*job) {
	q.mu.Lock()
	defer q.mu.Unlock()
	defer func() {
		if len(out) > 0 {
			q.forgetLocked(self)
		}
	}()
	for len(out) == 0 && q.count > 0 && q.head < len(q.items) {
		want := min(q.count, max, q.count/(2*workers)+1)
		if out == nil {
			out = make([]*job, 0, want)
		}
		var made []job // jobs made from segments, one allocation per pop
		for want > 0 && q.head < len(q.items) {
			e := &q.items[q.head]
			if e.finished() { // a finished run's tasks are dropped
				q.count -= e.len()
				*e = entry{}
				q.head++
				continue
			}
			if e.j != nil {
				out = append(out, e.j)
				q.count--
				want--
				*e = entry{}
				q.head++
				continue
			}
			k := min(want, e.hi-e.lo)
			if made == nil {
				made = make([]job, 0, want)
			}
			for i := e.lo; i < e.lo+k; i++ {
				made = append(made, job{run: e.run, index: i, input: e.run.inputs[i], memLimit: e.run.memLimit})
				out = append(out, &made[len(made)-1])
			}
			e.lo += k
			q.count -= k
			want -= k
			if e.lo == e.hi {
				*e = entry{}
				q.head++
			}
		}
	}
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 4096 && q.head > len(q.items)/2 {
		q.items = append(q.items[:0], q.items[q.head:]...)
		q.head = 0
	}
	if q.count > 0 && len(out) > 0 {
		// Jobs are left: another idle driver may take a share.
		q.wakeLocked(1)
	}
	return out
}

// empty reports whether no job waits.
func (q *queue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.count == 0
}

// holds reports whether at least n jobs wait.
func (q *queue) holds(n int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.count >= n
}

// wait registers ch as an idle driver's wake channel, unless jobs are
// waiting, and reports whether ch is registered. A registered driver gets
// one value on ch when a push wakes it; it must call unwait if it stops
// waiting for another reason. Registering twice is registering once.
func (q *queue) wait(ch chan struct{}) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.count > 0 {
		return false
	}
	if !slices.Contains(q.idle, ch) {
		q.idle = append(q.idle, ch)
	}
	return true
}

// forgetLocked takes ch off the idle stack, if it is there, and drops a
// wake-up it holds: its driver is busy now and looks at the queue again
// before it next sleeps.
func (q *queue) forgetLocked(ch chan struct{}) {
	if ch == nil {
		return
	}
	if i := slices.Index(q.idle, ch); i >= 0 {
		q.idle = slices.Delete(q.idle, i, i+1)
	}
	select {
	case <-ch:
	default:
	}
}

// unwait takes ch off the idle stack. When a push had already taken it off
// (and so counted on this driver), the wake-up is passed to another.
func (q *queue) unwait(ch chan struct{}) {
	q.mu.Lock()
	for i, c := range q.idle {
		if c == ch {
			q.idle = append(q.idle[:i], q.idle[i+1:]...)
			q.mu.Unlock()
			return
		}
	}
	q.mu.Unlock()
	select {
	case <-ch:
	default:
	}
	q.wakeOne()
}
