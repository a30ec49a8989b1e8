package pool_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/enginetest"
	"github.com/safepool/safepool/pool"
)

var (
	testDurationBounds = []time.Duration{time.Microsecond, 4 * time.Microsecond, time.Millisecond, time.Second}
	testPeakBounds     = []int64{64 << 10, 1 << 20, 16 << 20}
)

func newTally(t *testing.T) *pool.Tally {
	t.Helper()
	tl, err := pool.NewTally(testDurationBounds, testPeakBounds)
	require.NoError(t, err)
	return tl
}

// tallier is a pool.Tallier: the pool counts in its Tally, and it counts
// the records it is told of, which should be none.
type tallier struct {
	t       *pool.Tally
	records atomic.Int64
}

func (x *tallier) Tally() *pool.Tally { return x.t }
func (x *tallier) ObserveTasks(ts []pool.TaskRecord) {
	x.records.Add(int64(len(ts)))
}
func (x *tallier) Observe(e pool.Event) {}

// recordTally is a plain TaskObserver that counts the records it is told of
// in a Tally of its own: the way the pool counted before Tallier.
type recordTally struct{ t *pool.Tally }

func (x recordTally) ObserveTasks(ts []pool.TaskRecord) { x.t.ObserveTasks(ts) }
func (x recordTally) Observe(pool.Event)                {}

func countStatus(rs []pool.Result, s pool.Status) uint64 {
	var n uint64
	for _, r := range rs {
		if r.Status == s {
			n++
		}
	}
	return n
}

// TestTallyAfterKill maps slow_square over ten inputs on two workers, with
// the worker running task 3 SIGKILLed, under each policy: as soon as Map
// returns the Tally holds every final result and every attempt, the killed
// one among them, and the pool built no TaskRecord.
func TestTallyAfterKill(t *testing.T) {
	for _, policy := range []pool.Policy{pool.Skip, pool.Retry, pool.Abort} {
		t.Run(policy.String(), func(t *testing.T) {
			x := &tallier{t: newTally(t)}
			p := newPool(t, "wchaos", func(cfg *pool.Config) {
				cfg.KillPolicy = policy
				cfg.TaskObserver = x
				cfg.OnEvent = newKiller(3).onEvent
			})
			rs, err := p.Map(context.Background(), "slow_square", enginetest.Ints(10))
			c := x.t.Read()
			switch policy {
			case pool.Skip:
				require.NoError(t, err)
				require.Equal(t, map[pool.Status]uint64{pool.StatusOK: 9, pool.StatusKilled: 1}, c.Tasks)
				require.Equal(t, map[pool.Status]uint64{pool.StatusOK: 9, pool.StatusKilled: 1}, c.Attempts)
			case pool.Retry:
				require.NoError(t, err)
				require.Equal(t, 2, rs[3].Attempts)
				require.Equal(t, map[pool.Status]uint64{pool.StatusOK: 10}, c.Tasks)
				require.Equal(t, map[pool.Status]uint64{pool.StatusOK: 10, pool.StatusKilled: 1}, c.Attempts)
			case pool.Abort:
				require.ErrorIs(t, err, pool.ErrTaskKilled)
				require.Equal(t, countStatus(rs, pool.StatusOK), c.Tasks[pool.StatusOK])
				require.Equal(t, uint64(1), c.Tasks[pool.StatusKilled])
				require.Equal(t, uint64(1), c.Attempts[pool.StatusKilled])
				// The tasks the abort left without a result are counted
				// when the pool reports the map's end: by Close.
				require.NoError(t, p.Close())
				c = x.t.Read()
				require.Equal(t, countStatus(rs, pool.StatusNotRun), c.Tasks[pool.StatusNotRun])
				require.Equal(t, uint64(10), c.Tasks[pool.StatusOK]+c.Tasks[pool.StatusKilled]+c.Tasks[pool.StatusNotRun])
			}
			var attempts uint64
			for _, n := range c.Attempts {
				attempts += n
			}
			require.Equal(t, attempts, c.Duration.Count(), "every attempt's duration is known: the killed one's start was reported")
			require.Equal(t, c.Attempts[pool.StatusOK], c.PeakMemory.Count(), "the ok attempts report their peak memory")
			require.Len(t, c.Duration.Counts, len(testDurationBounds)+1)
			require.Equal(t, []int64{1000, 4000, 1_000_000, 1_000_000_000}, c.Duration.Bounds)
			require.Positive(t, c.Duration.Counts[3], "slow_square sleeps 30 ms: between 1 ms and 1 s")
			require.GreaterOrEqual(t, c.Duration.Sum, c.Attempts[pool.StatusOK]*uint64(30*time.Millisecond))
			require.Zero(t, x.records.Load(), "a Tallier is told of no TaskRecord")
		})
	}
}

// TestTallyMatchesRecords checks that what the pool counts in a Tallier's
// Tally is what a TaskObserver's records say, counted by Tally.ObserveTasks,
// on the same map.
func TestTallyMatchesRecords(t *testing.T) {
	const n = 3000
	counts := map[string]pool.TallyCounts{}
	for _, mode := range []string{"tallier", "records"} {
		tl := newTally(t)
		var obs pool.TaskObserver = &tallier{t: tl}
		if mode == "records" {
			obs = recordTally{tl}
		}
		p := newPool(t, "wsquare", func(cfg *pool.Config) { cfg.TaskObserver = obs })
		rs, err := p.Map(context.Background(), "square", enginetest.Ints(n))
		require.NoError(t, err)
		require.Equal(t, uint64(n), countStatus(rs, pool.StatusOK))
		counts[mode] = tl.Read()
	}
	a, b := counts["tallier"], counts["records"]
	require.Equal(t, map[pool.Status]uint64{pool.StatusOK: n}, a.Tasks)
	require.Equal(t, a.Tasks, b.Tasks)
	require.Equal(t, a.Attempts, b.Attempts)
	require.Equal(t, uint64(n), a.Duration.Count())
	require.Equal(t, b.Duration.Count(), a.Duration.Count())
	// Every wsquare task peaks at the module's one page of memory, 64 KiB:
	// the first bucket.
	require.Equal(t, []uint64{n, 0, 0, 0}, a.PeakMemory.Counts)
	require.Equal(t, b.PeakMemory, a.PeakMemory)
}

// TestTallyReadWhileMapping reads a Tally while two pools count in it:
// each Read's counts only grow, never past the tasks submitted, and once
// the maps and Applies returned they are all there.
func TestTallyReadWhileMapping(t *testing.T) {
	const n = 20_000
	x := &tallier{t: newTally(t)}
	p1 := newPool(t, "wsquare", func(cfg *pool.Config) { cfg.TaskObserver = x })
	p2 := newPool(t, "wsquare", func(cfg *pool.Config) { cfg.TaskObserver = x })

	stop := make(chan struct{})
	reads := make(chan int, 1)
	go func() {
		var last uint64
		k := 0
		for {
			select {
			case <-stop:
				reads <- k
				return
			default:
			}
			c := x.t.Read()
			ok := c.Tasks[pool.StatusOK]
			if ok < last || ok > 2*n+100 || c.Attempts[pool.StatusOK] < ok {
				t.Errorf("read %d: ok tasks %d after %d, attempts %d", k, ok, last, c.Attempts[pool.StatusOK])
			}
			last = ok
			k++
		}
	}()
	var wg sync.WaitGroup
	for _, p := range []*pool.Pool{p1, p2} {
		wg.Go(func() {
			if _, err := p.Map(context.Background(), "square", enginetest.Ints(n)); err != nil {
				t.Error(err)
			}
			for i := range 50 {
				if _, err := p.Apply(context.Background(), "square", []byte{byte('0' + i%10)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	c := x.t.Read()
	close(stop)
	require.Positive(t, <-reads)
	require.Equal(t, map[pool.Status]uint64{pool.StatusOK: 2*n + 100}, c.Tasks)
	require.Equal(t, map[pool.Status]uint64{pool.StatusOK: 2*n + 100}, c.Attempts)
	require.Equal(t, uint64(2*n+100), c.Duration.Count())
}

// TestTallyIsATaskObserver runs a map with a Tally as the pool's
// TaskObserver, as ExampleTally does, through a real SIGKILL under retry.
func TestTallyIsATaskObserver(t *testing.T) {
	tl := newTally(t)
	p := newPool(t, "wchaos", func(cfg *pool.Config) {
		cfg.TaskObserver = tl
		cfg.KillPolicy = pool.Retry
		cfg.OnEvent = newKiller(2).onEvent
	})
	rs, err := p.Map(context.Background(), "slow_square", enginetest.Ints(6))
	require.NoError(t, err)
	require.Equal(t, 2, rs[2].Attempts)
	c := tl.Read()
	require.Equal(t, map[pool.Status]uint64{pool.StatusOK: 6}, c.Tasks)
	require.Equal(t, map[pool.Status]uint64{pool.StatusOK: 6, pool.StatusKilled: 1}, c.Attempts)
}

// TestTallierNil checks that a Tallier whose Tally is nil is an ordinary
// TaskObserver.
func TestTallierNil(t *testing.T) {
	x := &tallier{}
	p := newPool(t, "wsquare", func(cfg *pool.Config) { cfg.TaskObserver = x })
	_, err := p.Map(context.Background(), "square", enginetest.Ints(10))
	require.NoError(t, err)
	require.Equal(t, int64(10), x.records.Load())
}

func TestNewTallyErrors(t *testing.T) {
	many := make([]int64, 32)
	for i := range many {
		many[i] = int64(i + 1)
	}
	for _, c := range []struct {
		dur  []time.Duration
		peak []int64
		want string
	}{
		{[]time.Duration{2, 1}, nil, "duration bounds must ascend: 1 comes after 2"},
		{[]time.Duration{1, 1}, nil, "duration bounds must ascend: 1 comes after 1"},
		{[]time.Duration{-1}, nil, "duration bound -1 is negative"},
		{nil, many, "32 peak memory bounds; a histogram takes at most 31"},
	} {
		_, err := pool.NewTally(c.dur, c.peak)
		require.ErrorContains(t, err, c.want)
	}
	tl, err := pool.NewTally(nil, many[:31])
	require.NoError(t, err)
	c := tl.Read()
	require.Equal(t, []uint64{0}, c.Duration.Counts, "no bounds: one bucket, for every value")
	require.Len(t, c.PeakMemory.Counts, 32)
	require.Empty(t, c.Tasks)
}

func TestTallyObserveTasks(t *testing.T) {
	tl := newTally(t)
	tl.ObserveTasks([]pool.TaskRecord{
		{Ended: true, Final: true, Status: pool.StatusOK, Duration: 500, PeakMemory: 64 << 10},
		{Ended: true, Status: pool.StatusKilled, Duration: -1},
		{Final: true, Status: pool.StatusKilled, Duration: -1},
		{Ended: true, Final: true, Status: pool.StatusOK, Duration: 5000, PeakMemory: 1<<20 + 1},
		{Ended: true, Status: pool.StatusTimeout, Duration: 2 * time.Second},
	})
	c := tl.Read()
	require.Equal(t, map[pool.Status]uint64{pool.StatusOK: 2, pool.StatusKilled: 1}, c.Tasks)
	require.Equal(t, map[pool.Status]uint64{pool.StatusOK: 2, pool.StatusKilled: 1, pool.StatusTimeout: 1}, c.Attempts)
	require.Equal(t, []uint64{1, 0, 1, 0, 1}, c.Duration.Counts, "500 ns, 5 µs, 2 s (over every bound)")
	require.Equal(t, uint64(500+5000+2e9), c.Duration.Sum)
	require.Equal(t, []uint64{1, 0, 1, 0}, c.PeakMemory.Counts, "64 KiB is at most the first bound; 1 MiB + 1 is over the second")
}
