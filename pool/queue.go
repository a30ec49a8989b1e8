package pool

import "sync"

// job is one task of one run, across all its attempts.
type job struct {
	id       uint64 // unique per attempt-send; echoed by the worker
	run      *run
	index    int
	input    []byte
	attempts int // attempts that ended
	memLimit int64
	history  []Attempt
	gateHold bool // the last failure was a signal: check the memory gate
}

// queue holds jobs waiting for a worker, in order. Jobs of a finished run
// are dropped when popped. Its methods are safe for concurrent use.
type queue struct {
	mu      sync.Mutex
	items   []*job
	head    int
	changed chan struct{} // closed and replaced on every push
}

func newQueue() *queue { return &queue{changed: make(chan struct{})} }

func (q *queue) signal() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// push adds jobs at the back.
func (q *queue) push(js ...*job) {
	q.mu.Lock()
	q.items = append(q.items, js...)
	q.signal()
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
	items := make([]*job, 0, len(js)+len(rest))
	q.items = append(append(items, js...), rest...)
	q.head = 0
	q.signal()
	q.mu.Unlock()
}

// pop takes up to max jobs, aiming at a fair share of the queue per worker
// so that a small map spreads over every worker. It returns nil and a
// channel that is closed on the next push when the queue is empty.
func (q *queue) pop(max, workers int) ([]*job, <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*job
	for len(out) == 0 && q.head < len(q.items) {
		n := len(q.items) - q.head
		want := min(max, n/(2*workers))
		want = min(n, want+1)
		for _, j := range q.items[q.head : q.head+want] {
			if !j.run.finished() {
				out = append(out, j)
			}
		}
		clear(q.items[q.head : q.head+want])
		q.head += want
	}
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 4096 && q.head > len(q.items)/2 {
		q.items = append(q.items[:0], q.items[q.head:]...)
		q.head = 0
	}
	if len(out) == 0 {
		return nil, q.changed
	}
	return out, nil
}

// waitCh returns nil when jobs wait, or a channel closed on the next push.
func (q *queue) waitCh() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head < len(q.items) {
		return nil
	}
	return q.changed
}
