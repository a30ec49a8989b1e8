package pool

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// batchRecorder is a TaskObserver that keeps each call's records apart,
// and whether the map had ended when it was called.
type batchRecorder struct {
	mu      sync.Mutex
	batches [][]TaskRecord
	r       *run // the map watched
	late    int  // final records handed over after the map's done closed
}

func (b *batchRecorder) ObserveTasks(ts []TaskRecord) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batches = append(b.batches, slices.Clone(ts))
	if b.r != nil {
		select {
		case <-b.r.done:
			for _, t := range ts {
				if t.Final {
					b.late++
				}
			}
		default:
		}
	}
}

func (b *batchRecorder) Observe(Event) {}

func (b *batchRecorder) sizes() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ns []int
	for _, x := range b.batches {
		ns = append(ns, len(x))
	}
	return ns
}

func (b *batchRecorder) all() []TaskRecord {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Concat(b.batches...)
}

// observedRun is a pool with only what settle needs, its TaskObserver
// rec, and a sealed map of n tasks.
func observedRun(t *testing.T, n int, cfg Config) (*Pool, *run, []job, *batchRecorder) {
	t.Helper()
	rec := &batchRecorder{}
	cfg.TaskObserver = rec
	cfg.OnKilled = max(cfg.OnKilled, Skip)
	cfg.OnError = max(cfg.OnError, Skip)
	p := &Pool{cfg: cfg, q: newQueue(), hooks: &runHooks{killed: func(KilledTask) {}, stop: func(*run) {}, ended: func(*run) {}}}
	r := p.newRun(context.Background(), "square", n, nil)
	r.add(n)
	r.seal()
	rec.r = r
	jobs := make([]job, n)
	for i := range jobs {
		jobs[i] = job{run: r, index: i, memLimit: 1 << 20}
	}
	return p, r, jobs, rec
}

func okOutcome(j *job, pid int, more bool) outcome {
	start := time.Unix(0, 1_000_000)
	return outcome{job: j, more: more, res: Result{Index: j.index, Status: StatusOK,
		Stats: Stats{Start: start, End: start.Add(time.Duration(1000 + j.index)), WorkerPID: pid}}}
}

// ptr is &o, for an outcome made by a call.
func ptr(o outcome) *outcome { return &o }

func isDone(r *run) bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// TestObserverBatches checks that the records of one answer's outcomes
// reach the TaskObserver in one call, after the last, in order, and that a
// queue never holds more than observeBatch.
func TestObserverBatches(t *testing.T) {
	const n = 300
	p, r, jobs, rec := observedRun(t, n, Config{})
	// An answer of five results, then one of one.
	for i := range 5 {
		p.settle(ptr(okOutcome(&jobs[i], 7, i < 4)))
		if i < 4 {
			require.Empty(t, rec.sizes(), "nothing is handed over before the answer's last outcome")
		}
	}
	require.Equal(t, []int{5}, rec.sizes())
	p.settle(ptr(okOutcome(&jobs[5], 7, false)))
	require.Equal(t, []int{5, 1}, rec.sizes())

	// An answer of 290 results: handed over observeBatch at a time, then
	// the rest after the last.
	for i := 6; i < n-4; i++ {
		p.settle(ptr(okOutcome(&jobs[i], 8, i < n-5)))
	}
	require.Equal(t, []int{5, 1, observeBatch, observeBatch, n - 10 - 2*observeBatch}, rec.sizes())
	require.False(t, isDone(r))

	for i, x := range rec.all() {
		require.Equal(t, i, x.Index, "records come in the order their outcomes were settled")
		require.True(t, x.Ended && x.Final)
		require.Equal(t, StatusOK, x.Status)
		require.Equal(t, time.Duration(1000+i), x.Duration)
	}
}

// TestObserverBeforeEnd checks that every final record is handed over
// before the map's done closes, when its last result ends it with more
// outcomes said to follow and when it is aborted from elsewhere while
// records wait for the rest of their answer.
func TestObserverBeforeEnd(t *testing.T) {
	t.Run("last result", func(t *testing.T) {
		const n = 10
		p, r, jobs, rec := observedRun(t, n, Config{})
		for i := range n {
			p.settle(ptr(okOutcome(&jobs[i], 7, true)))
		}
		require.True(t, isDone(r))
		require.Len(t, rec.all(), n)
		require.Zero(t, rec.late)
	})
	t.Run("abort", func(t *testing.T) {
		const n = 10
		p, r, jobs, rec := observedRun(t, n, Config{})
		for i := range 3 {
			p.settle(ptr(okOutcome(&jobs[i], 7, true)))
		}
		require.Empty(t, rec.sizes())
		r.abort(errors.New("stop"))
		require.True(t, isDone(r))
		require.Equal(t, []int{3}, rec.sizes())
		require.Zero(t, rec.late)

		// A result the map no longer takes is an attempt's end, not a
		// final result, and is handed over at once.
		x := taskRecord(&jobs[5], &Result{Status: StatusOK}, -1)
		require.False(t, r.deliver(&Result{Index: 5, Status: StatusOK}, 0, &x, nil, true))
		all := rec.all()
		require.Len(t, all, 4)
		require.True(t, all[3].Ended)
		require.False(t, all[3].Final)
	})
}

// TestObserverFailedAttempts checks the records of failed attempts: one
// retried (its end only) and one skipped (its end, then its final result),
// in the batch of the answer they came in.
func TestObserverFailedAttempts(t *testing.T) {
	p, _, jobs, rec := observedRun(t, 4, Config{OnError: Retry, Retry: RetryPolicy{MaxAttempts: 3, Backoff: time.Hour, MaxBackoff: time.Hour}})
	failed := func(j *job, s Status, more bool) outcome {
		o := okOutcome(j, 9, more)
		o.res.Status, o.res.Error = s, "failed"
		return o
	}
	p.settle(ptr(failed(&jobs[0], StatusError, true))) // retried
	// A retry hands over the records queued before it, so that its next
	// attempt's cannot overtake them.
	require.Equal(t, []int{1}, rec.sizes())
	p.settle(ptr(failed(&jobs[1], StatusKilled, true))) // skipped
	p.settle(ptr(okOutcome(&jobs[2], 9, false)))
	require.Equal(t, []int{1, 3}, rec.sizes())
	all := rec.all()
	want := []struct {
		index        int
		status       Status
		ended, final bool
	}{{0, StatusError, true, false}, {1, StatusKilled, true, false}, {1, StatusKilled, false, true}, {2, StatusOK, true, true}}
	for i, w := range want {
		require.Equal(t, w.index, all[i].Index, "record %d", i)
		require.Equal(t, w.status, all[i].Status, "record %d", i)
		require.Equal(t, w.ended, all[i].Ended, "record %d", i)
		require.Equal(t, w.final, all[i].Final, "record %d", i)
	}
	require.Equal(t, Skip, all[2].Policy)
	require.Equal(t, time.Duration(-1), all[2].Duration, "a final record alone carries no duration")
}

// TestObserverNoAllocs checks that observing costs no allocation per task:
// neither in a long map, through a driver's buffer or the shared one (once
// they are made), nor in a map of one task.
func TestObserverNoAllocs(t *testing.T) {
	const n = 4096
	for _, driver := range []bool{true, false} {
		// nopTasks keeps nothing: what allocates is the pool's.
		p, r, jobs, _ := observedRun(t, n, Config{})
		p.cfg.TaskObserver, r.tasks = nopTasks{}, nopTasks{}
		var ob obsBuf
		i := 0
		allocs := testing.AllocsPerRun(1000, func() {
			o := okOutcome(&jobs[i], 7, i%32 != 31)
			if driver {
				o.obs = &ob
			}
			p.settle(&o)
			if driver && !o.more {
				ob.flush()
			}
			i++
		})
		require.Zero(t, allocs, "driver's buffer: %v", driver)
	}

	// A driver's buffer outlives the maps it serves.
	var ob obsBuf
	one := func(observed bool) func() {
		return func() {
			p, r, jobs, _ := observedRun(t, 1, Config{})
			p.cfg.TaskObserver, r.tasks = nil, nil
			if observed {
				p.cfg.TaskObserver, r.tasks = nopTasks{}, nopTasks{}
			}
			o := okOutcome(&jobs[0], 7, false)
			o.obs = &ob
			p.settle(&o)
			ob.flush()
		}
	}
	require.Equal(t, testing.AllocsPerRun(20, one(false)), testing.AllocsPerRun(20, one(true)), "a map of one task allocates no queue")
}

// blockingRecorder is a batchRecorder whose first call waits for release.
type blockingRecorder struct {
	batchRecorder
	entered, release chan struct{}
	once             sync.Once
}

func (b *blockingRecorder) ObserveTasks(ts []TaskRecord) {
	b.once.Do(func() {
		close(b.entered)
		<-b.release
	})
	b.batchRecorder.ObserveTasks(ts)
}

// TestObserverOutsideLock checks that a driver's TaskObserver is called
// outside any lock the other drivers take, so that their results go on
// being delivered meanwhile, and that the map's end waits for a hand-over
// under way and for the records another driver still holds.
func TestObserverOutsideLock(t *testing.T) {
	const n = 10
	p, r, jobs, _ := observedRun(t, n, Config{})
	br := &blockingRecorder{entered: make(chan struct{}), release: make(chan struct{})}
	br.r = r
	p.cfg.TaskObserver, r.tasks = br, br
	var ob1, ob2 obsBuf // two drivers' buffers

	first := make(chan struct{})
	go func() {
		defer close(first)
		o := okOutcome(&jobs[0], 7, false)
		o.obs = &ob1
		p.settle(&o)
		ob1.flush()
	}()
	<-br.entered

	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		for i := 1; i < 4; i++ {
			o := okOutcome(&jobs[i], 8, true)
			o.obs = &ob2
			p.settle(&o)
		}
	}()
	select {
	case <-delivered:
	case <-time.After(10 * time.Second):
		t.Fatal("results wait for the observer")
	}

	r.abort(errors.New("stop"))
	require.True(t, r.finished(), "the map ended: it takes no more results")
	select {
	case <-r.done:
		t.Fatal("the map's done closed while a hand-over of its records was under way")
	case <-time.After(50 * time.Millisecond):
	}
	close(br.release)
	<-first
	require.False(t, isDone(r), "the map's done closed while a driver still held its records")
	ob2.flush()
	require.True(t, isDone(r))
	require.Equal(t, []int{1, 3}, br.sizes(), "the first result, then the three queued, handed over by the end")
	require.Zero(t, br.late)
}

// TestObserverOtherBuffer checks that a map whose last result comes
// through one driver, while another driver's buffer holds some of its
// final records, closes done only when that buffer is handed over; and
// that a map whose records all sit in the buffer of the driver that ends
// it closes done at once.
func TestObserverOtherBuffer(t *testing.T) {
	t.Run("another driver's", func(t *testing.T) {
		const n = 6
		p, r, jobs, rec := observedRun(t, n, Config{})
		var a, b obsBuf
		for i := range n {
			o := okOutcome(&jobs[i], 7+i/3, true)
			o.obs = &a
			if i >= 3 {
				o.obs = &b
			}
			p.settle(&o)
		}
		require.True(t, r.finished())
		require.False(t, isDone(r), "a's three final records are not handed over yet")
		require.Equal(t, []int{3}, rec.sizes(), "the driver whose result ended the map handed its own over")
		a.flush()
		require.True(t, isDone(r))
		require.Equal(t, []int{3, 3}, rec.sizes())
		require.Zero(t, rec.late)
	})
	t.Run("its own", func(t *testing.T) {
		const n = 4
		p, r, jobs, rec := observedRun(t, n, Config{})
		var a obsBuf
		for i := range n {
			o := okOutcome(&jobs[i], 7, true)
			o.obs = &a
			p.settle(&o)
		}
		require.True(t, isDone(r))
		require.Equal(t, []int{n}, rec.sizes())
		require.Zero(t, rec.late)
	})
}

// TestObserverRecordOverwrites checks that fillRecord, which sets a
// record's fields one by one where the driver's buffer keeps it, leaves
// nothing of the record that was there before: a field it forgot would
// carry a stale value into the next batch.
func TestObserverRecordOverwrites(t *testing.T) {
	stale := TaskRecord{Ended: true, Final: true, Status: StatusKilled, Policy: Abort, Attempt: 9, Index: 99,
		WorkerPID: 999, Duration: 9999, PeakMemory: 99999}
	v := reflect.ValueOf(stale)
	for i := range v.NumField() {
		require.False(t, v.Field(i).IsZero(), "the stale record must set %s, so that the test sees it overwritten", v.Type().Field(i).Name)
	}
	start := time.Unix(0, 1_000_000)
	j := &job{index: 5, attempts: 1}
	res := &Result{Index: 5, Status: StatusOK, Stats: Stats{Start: start, End: start.Add(1500), WorkerPID: 4000, PeakMemory: 2 << 20}}
	rec := stale
	fillRecord(&rec, j, res, attemptDuration(&res.Stats))
	require.Equal(t, TaskRecord{Ended: true, Status: StatusOK, Attempt: 1, Index: 5, WorkerPID: 4000, Duration: 1500, PeakMemory: 2 << 20}, rec)

	res.Stats.Start = time.Time{}
	fillRecord(&rec, j, res, attemptDuration(&res.Stats))
	require.Equal(t, time.Duration(-1), rec.Duration, "no start: the duration is not known")
}
