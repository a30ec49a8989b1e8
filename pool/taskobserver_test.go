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

// TestTaskObserverKill kills workers with real SIGKILLs mid-task and checks
// that the killed tasks' records were observed before Map returned: with
// Skip, the killed attempt's end and its final result; with Retry, the
// killed attempt's end before the record of the attempt that succeeded.
// The last task is among those killed, so that its death is likely the
// result that ends the map.
func TestTaskObserverKill(t *testing.T) {
	const n = 8
	targets := []int{2, n - 1}
	for _, policy := range []pool.Policy{pool.Skip, pool.Retry} {
		t.Run(policy.String(), func(t *testing.T) {
			rec := &recorder{}
			k := newKiller(targets...)
			p := newPool(t, "wchaos", func(c *pool.Config) {
				c.Workers, c.BatchSize, c.KillPolicy = 2, 2, policy
				c.TaskObserver, c.OnEvent = rec, k.onEvent
			})
			rs, err := p.Map(context.Background(), "slow_square", enginetest.Ints(n))
			require.NoError(t, err)
			require.ElementsMatch(t, targets, k.killed, "the workers were not killed: the test tested nothing")

			rec.mu.Lock()
			defer rec.mu.Unlock()
			finals := map[int]pool.TaskRecord{}
			ends := map[int][]pool.Status{}
			for _, x := range rec.records {
				if x.Ended {
					ends[x.Index] = append(ends[x.Index], x.Status)
				}
				if x.Final {
					_, twice := finals[x.Index]
					require.False(t, twice, "task %d has two final records", x.Index)
					finals[x.Index] = x
				}
			}
			require.Len(t, finals, n, "every final result was observed before Map returned")
			for i, r := range rs {
				require.Equal(t, r.Status, finals[i].Status, "task %d", i)
			}
			for _, i := range targets {
				if policy == pool.Skip {
					require.Equal(t, pool.StatusKilled, rs[i].Status)
					require.Equal(t, []pool.Status{pool.StatusKilled}, ends[i], "task %d", i)
					require.Equal(t, pool.Skip, finals[i].Policy)
					require.False(t, finals[i].Ended, "a killed task's final result is a record of its own")
				} else {
					require.Equal(t, pool.StatusOK, rs[i].Status)
					require.Equal(t, []pool.Status{pool.StatusKilled, pool.StatusOK}, ends[i], "task %d: its attempts in order", i)
					require.Equal(t, 2, finals[i].Attempt)
				}
			}
		})
	}
}
