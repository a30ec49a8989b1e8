package pool_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/enginetest"
	"github.com/safepool/safepool/pool"
)

// recorder is a TaskObserver that keeps what it is told.
type recorder struct {
	mu      sync.Mutex
	records []pool.TaskRecord
	events  []pool.Event
}

func (r *recorder) ObserveTasks(ts []pool.TaskRecord) {
	r.mu.Lock()
	r.records = append(r.records, ts...)
	r.mu.Unlock()
}

func (r *recorder) Observe(e pool.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) finals() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, t := range r.records {
		if t.Final {
			n++
		}
	}
	return n
}

// TestTaskObserver checks what a TaskObserver is told, next to an Observer
// that keeps receiving the task Events.
func TestTaskObserver(t *testing.T) {
	const n = 40
	rec := &recorder{}
	var mu sync.Mutex
	kinds := map[pool.EventKind]int{}
	p := newPool(t, "wsquare", func(cfg *pool.Config) {
		cfg.TaskObserver = rec
		cfg.Observer = func(e pool.Event) {
			mu.Lock()
			kinds[e.Kind]++
			mu.Unlock()
		}
	})
	rs, err := p.Map(context.Background(), "square", enginetest.Ints(n))
	require.NoError(t, err)
	// Every final result was observed before Map returned.
	require.Equal(t, n, rec.finals())

	rec.mu.Lock()
	seen := map[int]bool{}
	for _, r := range rec.records {
		require.True(t, r.Ended && r.Final, "an ok task's end and final result are one record: %+v", r)
		require.Equal(t, pool.StatusOK, r.Status)
		require.Equal(t, 1, r.Attempt)
		require.Equal(t, rs[r.Index].Stats.WorkerPID, r.WorkerPID)
		require.Equal(t, rs[r.Index].Stats.End.Sub(rs[r.Index].Stats.Start), r.Duration)
		seen[r.Index] = true
	}
	require.Len(t, seen, n)
	for _, e := range rec.events {
		switch e.Kind {
		case pool.EventTaskStart, pool.EventTaskEnd, pool.EventTaskFinal:
			t.Fatalf("a TaskObserver was sent %s", e.Kind)
		}
	}
	rec.mu.Unlock()

	// An Observer is told of a final result after its map took it, so the
	// last EventTaskFinal may come just after Map returned.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return kinds[pool.EventTaskFinal] == n
	}, 10*time.Second, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, n, kinds[pool.EventTaskEnd], "the Observer still gets every task's Events")
	require.Equal(t, n, kinds[pool.EventTaskFinal])
	require.Positive(t, kinds[pool.EventWorkerStart])
	rec.mu.Lock()
	defer rec.mu.Unlock()
	starts := 0
	for _, e := range rec.events {
		if e.Kind == pool.EventWorkerStart {
			starts++
		}
	}
	require.Equal(t, kinds[pool.EventWorkerStart], starts, "both are told of worker starts")
}
