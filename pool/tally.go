package pool

import (
	"fmt"
	"math/bits"
	"sync"
	"time"
)

// Tallier is a TaskObserver that has the pool count its tasks rather than
// be told of each. New takes its Tally, and the pool counts there every
// attempt that ends and every final result, with a few additions made
// inside the lock it takes anyway to deliver the result: it builds no
// TaskRecord, and calls the observer's ObserveTasks never. Observe still
// receives the other events, EventNotRun among them, whose tasks the pool
// has counted in the Tally already. It is the cheapest way to count a pool's tasks, a few
// nanoseconds each where TaskRecords cost a few tens; a
// *metrics.Collector is one.
type Tallier interface {
	TaskObserver
	// Tally returns where the pool counts. New calls it once; nil makes
	// the observer an ordinary TaskObserver.
	Tally() *Tally
}

// A Tally counts tasks: final results and ended attempts by status, and
// histograms of the attempts' durations and peak memory. Pools count in
// it when it is their TaskObserver's (see Tallier), or their TaskObserver
// itself:
//
//	t, err := pool.NewTally(durationBounds, peakBounds)
//	cfg.TaskObserver = t
//
// ObserveTasks counts TaskRecords in it. Read returns what it has counted
// so far. Its methods are safe for concurrent use, and one Tally may count
// for several pools.
//
// A map's counts are kept with the map while it runs, under the lock that
// guards its results, and added to the Tally's when it ends: once Map (or
// MapHandle.Wait) returns, every final result of the map is in what Read
// returns, and a Read sees each count once, never one taken back.
type Tally struct {
	duration, peak tallyBuckets

	mu   sync.Mutex
	rest tallyCounts // counted outside a live run: ended runs, records, late results
	// runs are the live runs of the pools that count here; each counts
	// in its own tallyCounts, under its own lock. The lock order is
	// Tally.mu, then run.mu.
	runs map[*run]struct{}
}

// TallyCounts is what a Tally has counted.
type TallyCounts struct {
	// Tasks counts final results by status. StatusNotRun counts the tasks
	// that a map ended without running, as the pool reports the map's end
	// (with EventNotRun), which can come just after Map returns.
	Tasks map[Status]uint64
	// Attempts counts the attempts that ended, by status: each result a
	// worker sent, and each attempt lost with its worker.
	Attempts map[Status]uint64
	// Duration is the histogram of the ended attempts' durations, in
	// nanoseconds, from the worker's start of the task to its end: those
	// whose start the worker reported.
	Duration Histogram
	// PeakMemory is the histogram of the ended attempts' peak linear
	// memory, in bytes: those whose peak is known.
	PeakMemory Histogram
}

// Histogram counts values in buckets.
type Histogram struct {
	// Bounds are the buckets' upper bounds, ascending: a value counts in
	// the first bucket whose bound is at least the value.
	Bounds []int64
	// Counts has one count per bound, and a last one for the values above
	// every bound. They are not cumulative.
	Counts []uint64
	// Sum is the sum of the values counted.
	Sum uint64
}

// Count is the number of values counted.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// maxTallyBounds bounds the buckets of a Tally's histograms.
const maxTallyBounds = 31

// tallySlots bounds the status values counted in arrays: the pool's
// statuses are small numbers, StatusNotRun the largest; larger ones
// count in slot 0, which no status uses.
const tallySlots = int(StatusNotRun) + 1

func tallySlot(s Status) int {
	if int(s) < tallySlots {
		return int(s)
	}
	return 0
}

// NewTally returns a Tally whose histograms have these upper bounds: of
// attempts' durations, and of their peak memory in bytes. Each list must
// ascend, hold no negative bound, and have at most 31.
func NewTally(duration []time.Duration, peakMemory []int64) (*Tally, error) {
	d := make([]int64, len(duration))
	for i, x := range duration {
		d[i] = int64(x)
	}
	t := &Tally{runs: map[*run]struct{}{}}
	var err error
	if t.duration, err = newTallyBuckets("duration", d); err != nil {
		return nil, err
	}
	if t.peak, err = newTallyBuckets("peak memory", peakMemory); err != nil {
		return nil, err
	}
	return t, nil
}

// Read returns what t has counted, with the histograms' bounds.
func (t *Tally) Read() TallyCounts {
	var sum tallyCounts
	t.mu.Lock()
	sum.add(&t.rest, t.buckets())
	for r := range t.runs {
		r.mu.Lock()
		if r.tc != nil {
			sum.add(r.tc, t.buckets())
		}
		r.mu.Unlock()
	}
	t.mu.Unlock()
	out := TallyCounts{Tasks: map[Status]uint64{}, Attempts: map[Status]uint64{}}
	for i, c := range sum.status {
		if c.tasks > 0 {
			out.Tasks[Status(i)] = c.tasks
		}
		if c.attempts > 0 {
			out.Attempts[Status(i)] = c.attempts
		}
	}
	out.Duration, out.PeakMemory = sum.histograms(t)
	return out
}

// ObserveTasks counts records as a TaskObserver is told of them: an
// Ended one as an attempt, a Final one as a final result. A
// TaskObserver that wraps a Tally hands its records on with it. Tasks not
// run come as no record (EventNotRun says how many): a Tally counts them
// only for the pools that count in it themselves.
func (t *Tally) ObserveTasks(recs []TaskRecord) {
	t.mu.Lock()
	for i := range recs {
		t.rest.record(t, &recs[i])
	}
	t.mu.Unlock()
}

// buckets is how many buckets t's histograms use, the longer's.
func (t *Tally) buckets() int { return max(t.duration.n, t.peak.n) + 1 }

// Tally returns t: a Tally is a Tallier, whose pools count in it.
func (t *Tally) Tally() *Tally { return t }

// Observe ignores events: a pool that counts in t counted the tasks its
// EventNotRun reports already.
func (t *Tally) Observe(Event) {}

var _ Tallier = (*Tally)(nil)

// begin makes r count in t until it ends.
func (t *Tally) begin(r *run) {
	tc := tallyPool.Get().(*tallyCounts)
	t.mu.Lock()
	r.tally, r.tc = t, tc
	t.runs[r] = struct{}{}
	t.mu.Unlock()
}

// end adds what r counted to t's own counts, with notRun tasks that r
// ended without running, and stops r counting apart: what comes later
// counts in t's own.
func (t *Tally) end(r *run, notRun int64) {
	t.mu.Lock()
	r.mu.Lock()
	tc := r.tc
	r.tc = nil
	r.mu.Unlock()
	if tc != nil {
		t.rest.add(tc, t.buckets())
	}
	t.rest.status[StatusNotRun].tasks += uint64(max(notRun, 0))
	delete(t.runs, r)
	t.mu.Unlock()
	if tc != nil {
		*tc = tallyCounts{}
		tallyPool.Put(tc)
	}
}

// late counts an attempt that ended after its run stopped counting apart.
func (t *Tally) late(s Status, d time.Duration, peak int64) {
	t.mu.Lock()
	t.rest.attempt(t, s, d, peak)
	t.mu.Unlock()
}

// tallyPool keeps the counts of ended runs for new ones: an Apply is a
// run of its own, and need not allocate a kilobyte to count one task.
var tallyPool = sync.Pool{New: func() any { return new(tallyCounts) }}

// countAttempt counts a failed attempt of r's, which is not delivered (it
// may be retried): in r's counts while r is live, else in its Tally's.
func (r *run) countAttempt(s Status, d time.Duration, peak int64) {
	r.mu.Lock()
	if tc := r.tc; tc != nil {
		tc.attempt(r.tally, s, d, peak)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	r.tally.late(s, d, peak)
}

// tallyCounts are the counts of a run, or a Tally's own. They are laid
// out for an ok task to add to two cache lines: the first (the sums, and
// its status's counts) and its buckets'.
type tallyCounts struct {
	durationSum, peakSum uint64
	status               [tallySlots]struct{ tasks, attempts uint64 }
	bucket               [maxTallyBounds + 1]struct{ duration, peak uint64 }
}

// attempt counts an attempt that ended with status s, lasted d (-1 when
// not known) and peaked at peak bytes (0 when not known).
func (c *tallyCounts) attempt(t *Tally, s Status, d time.Duration, peak int64) {
	c.status[tallySlot(s)].attempts++
	if d >= 0 {
		c.bucket[t.duration.index(uint64(d))&maxTallyBounds].duration++
		c.durationSum += uint64(d)
	}
	if p := peak; p > 0 {
		c.bucket[t.peak.index(uint64(p))&maxTallyBounds].peak++
		c.peakSum += uint64(p)
	}
}

// record counts a TaskRecord.
func (c *tallyCounts) record(t *Tally, rec *TaskRecord) {
	if rec.Ended {
		c.attempt(t, rec.Status, rec.Duration, rec.PeakMemory)
	}
	if rec.Final {
		c.status[tallySlot(rec.Status)].tasks++
	}
}

// add adds o's counts to c's, o's first nb buckets: those its Tally
// uses.
func (c *tallyCounts) add(o *tallyCounts, nb int) {
	c.durationSum += o.durationSum
	c.peakSum += o.peakSum
	for i := range c.status {
		c.status[i].tasks += o.status[i].tasks
		c.status[i].attempts += o.status[i].attempts
	}
	for i := range c.bucket[:nb] {
		c.bucket[i].duration += o.bucket[i].duration
		c.bucket[i].peak += o.bucket[i].peak
	}
}

// histograms returns the counts' two histograms.
func (c *tallyCounts) histograms(t *Tally) (duration, peak Histogram) {
	duration = Histogram{Bounds: append([]int64(nil), t.duration.bounds...), Counts: make([]uint64, t.duration.n+1), Sum: c.durationSum}
	peak = Histogram{Bounds: append([]int64(nil), t.peak.bounds...), Counts: make([]uint64, t.peak.n+1), Sum: c.peakSum}
	for i := range duration.Counts {
		duration.Counts[i] = c.bucket[i].duration
	}
	for i := range peak.Counts {
		peak.Counts[i] = c.bucket[i].peak
	}
	return duration, peak
}

// tallyBuckets are a histogram's upper bounds, with a table that finds a
// value's bucket in a step or two.
type tallyBuckets struct {
	bounds []int64
	// units are the bounds as unsigned numbers, then MaxUint64 up to
	// the table's end: a sentinel no value passes.
	units [maxTallyBounds + 1]uint64
	n     int // len(bounds)
	// byLen is, for each bit length of a value, the first bucket whose
	// bound is at least the smallest value of that length: where index
	// starts looking.
	byLen [65]uint8
}

func newTallyBuckets(what string, bounds []int64) (tallyBuckets, error) {
	b := tallyBuckets{bounds: append([]int64(nil), bounds...), n: len(bounds)}
	if len(bounds) > maxTallyBounds {
		return b, fmt.Errorf("pool: NewTally: %d %s bounds; a histogram takes at most %d", len(bounds), what, maxTallyBounds)
	}
	for i, x := range bounds {
		if x < 0 {
			return b, fmt.Errorf("pool: NewTally: %s bound %d is negative; bounds are durations or byte counts, 0 or more", what, x)
		}
		if i > 0 && x <= bounds[i-1] {
			return b, fmt.Errorf("pool: NewTally: %s bounds must ascend: %d comes after %d", what, x, bounds[i-1])
		}
		b.units[i] = uint64(x)
	}
	for i := len(bounds); i < len(b.units); i++ {
		b.units[i] = ^uint64(0)
	}
	for n := range b.byLen {
		least := uint64(0)
		if n > 0 {
			least = 1 << (n - 1)
		}
		b.byLen[n] = uint8(b.search(least))
	}
	return b, nil
}

// index is the bucket of v: the first whose bound is at least v, or n for
// the values above every bound. It starts at the first bucket that can
// hold a value of v's bit length and steps up from there; with bounds that
// at least double from one to the next it steps at most once: a table
// look-up and a comparison or two, where a binary search costs several
// mispredicted branches. The sentinel ends the steps at n.
func (b *tallyBuckets) index(v uint64) int {
	i := int(b.byLen[bits.Len64(v)])
	for b.units[i&maxTallyBounds] < v {
		i++
	}
	return i
}

// search is index by binary search.
func (b *tallyBuckets) search(v uint64) int {
	lo, hi := 0, b.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b.units[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}
