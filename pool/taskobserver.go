package pool

import "sync"

// obsBuf queues TaskRecords for the TaskObserver on one goroutine of a
// dispatcher: a driver's, for the outcomes of its worker's answers (see
// outcome.obs). Nothing else touches it, so that queuing a record takes no
// lock and writes no memory that another worker's goroutine writes too:
// the map's lock is taken only to count the final records the buffers
// hold (run.unobserved), in the critical section that delivers the result
// anyway.
//
// A buffer is handed over (flush) when it is full, when the dispatcher has
// given the sink all the outcomes of an answer, before a retry is
// scheduled (so that an attempt's record comes before the next attempt's),
// and when a delivery ends its map. A map that ends while another
// goroutine's buffer still holds some of its final records closes done
// when that buffer is handed over (run.observed), which its dispatcher
// does after the rest of that one answer: so every final result of a map
// has been observed once Map returns, and nobody waits for another
// goroutine to do it.
type obsBuf struct {
	tasks TaskObserver
	recs  []TaskRecord
	// runs are the runs with final records in recs, and how many each,
	// in order, consecutive ones merged.
	runs []obsRun
}

type obsRun struct {
	r      *run
	finals int
}

// observeBatch bounds the records a buffer holds, and so a call of
// ObserveTasks.
const observeBatch = 128

// add queues rec, a record of r's; a Final one is counted in
// r.unobserved already.
func (b *obsBuf) add(r *run, rec *TaskRecord) {
	if b.recs == nil {
		b.recs = make([]TaskRecord, 0, observeBatch)
		b.tasks = r.tasks
	}
	if n := len(b.recs); n < cap(b.recs) && rec == &b.recs[:n+1][n] {
		b.recs = b.recs[:n+1] // written in place (see slot)
	} else {
		b.recs = append(b.recs, *rec)
	}
	if rec.Final {
		if n := len(b.runs); n > 0 && b.runs[n-1].r == r {
			b.runs[n-1].finals++
		} else {
			b.runs = append(b.runs, obsRun{r, 1})
		}
	}
	if len(b.recs) == observeBatch {
		b.flush()
	}
}

// slot returns where the next record added to b will be kept, for it to
// be written there rather than copied, or x when b is nil or has no room
// yet. What is written there is queued only by add.
func (b *obsBuf) slot(x *TaskRecord) *TaskRecord {
	if b == nil || len(b.recs) == cap(b.recs) {
		return x
	}
	return &b.recs[:len(b.recs)+1][len(b.recs)]
}

// flush hands the queued records to the TaskObserver, then tells their
// runs that their final records were observed, which ends a run that was
// waiting for them.
func (b *obsBuf) flush() {
	if len(b.recs) == 0 {
		return
	}
	b.tasks.ObserveTasks(b.recs)
	b.recs = b.recs[:0]
	for i := range b.runs {
		b.runs[i].r.observed(b.runs[i].finals)
	}
	clear(b.runs)
	b.runs = b.runs[:0]
}

// sharedObs is the buffer of the outcomes that come with none of their
// own: a cluster's results, which its one receiving goroutine hands over
// a batch at a time (outcome.more), and final results given from a
// retry's timer. Its lock is held while it is handed over, which keeps
// its records in order; the TaskObserver must not call the pool (see
// TaskObserver).
type sharedObs struct {
	mu sync.Mutex
	b  obsBuf
}

// queue queues rec, a record of r's, in ob, or with ob nil in the pool's
// shared buffer; more says that more outcomes of the same answer follow
// (outcome.more), end that rec's delivery ended r. A driver's buffer is
// handed over when its answer is settled; with end it is now, so that r's
// done closes at once, unless records of r wait in another buffer.
func (r *run) queue(ob *obsBuf, rec *TaskRecord, more, end bool) {
	if ob != nil {
		ob.add(r, rec)
		if end {
			ob.flush()
		}
		return
	}
	s := r.shared
	s.mu.Lock()
	s.b.add(r, rec)
	if end || !more {
		s.b.flush()
	}
	s.mu.Unlock()
}

// flushObs hands over ob, or the shared buffer when ob is nil.
func (r *run) flushObs(ob *obsBuf) {
	if ob != nil {
		ob.flush()
		return
	}
	s := r.shared
	s.mu.Lock()
	s.b.flush()
	s.mu.Unlock()
}

// observed says that n of r's final records were handed over. When r has
// ended and these were the last, it finishes: its done closes now.
func (r *run) observed(n int) {
	r.mu.Lock()
	r.unobserved -= n
	finish := r.unobserved == 0 && r.ending
	if finish {
		r.ending = false
	}
	r.mu.Unlock()
	if finish {
		r.finish()
	}
}
