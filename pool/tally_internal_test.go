package pool

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTallyBucketIndex checks the table's start and steps against a
// binary search at every bound, next to it, and at every power of two,
// for bounds that double or more and for bounds closer than that.
func TestTallyBucketIndex(t *testing.T) {
	quads := make([]int64, 14)
	for i := range quads {
		quads[i] = 1000 << (2 * i)
	}
	for _, bounds := range [][]int64{quads, {64 << 10, 128 << 10, 256 << 10}, {10, 11, 12, 13, 1000}, {0, 1, 2}, nil, {math.MaxInt64}} {
		b, err := newTallyBuckets("test", bounds)
		require.NoError(t, err)
		var vs []uint64
		for _, x := range bounds {
			vs = append(vs, uint64(x)-1, uint64(x), uint64(x)+1)
		}
		for n := range 64 {
			vs = append(vs, 1<<n-1, 1<<n, 1<<n+1)
		}
		for v := range uint64(1100) {
			vs = append(vs, v)
		}
		vs = append(vs, math.MaxUint64)
		for _, v := range vs {
			want := b.search(v)
			require.Equal(t, want, b.index(v), "bounds %v, value %d", bounds, v)
			if want < len(bounds) {
				require.LessOrEqual(t, v, uint64(bounds[want]))
			}
			if want > 0 {
				require.Greater(t, v, uint64(bounds[want-1]))
			}
		}
	}
	b, err := newTallyBuckets("test", quads)
	require.NoError(t, err)
	require.Equal(t, 0, b.index(1000), "1 µs is at most the first bound")
	require.Equal(t, 1, b.index(1001))
	require.Equal(t, 14, b.index(uint64(quads[13])+1), "over the last bound")
}

// tallyRun is observedRun's pool counting in a Tally instead of records.
func tallyRun(t *testing.T, n int) (*Pool, *run, []job, *Tally) {
	t.Helper()
	tl, err := NewTally([]time.Duration{time.Microsecond}, []int64{64 << 10})
	require.NoError(t, err)
	p := &Pool{cfg: Config{OnKilled: Skip, OnError: Skip}, q: newQueue(), tally: tl}
	p.hooks = &runHooks{killed: func(KilledTask) {}, stop: func(*run) {}, ended: p.runEnded}
	p.runs = map[*run]struct{}{}
	p.runsDone = sync.NewCond(&p.mu)
	r := p.newRun(context.Background(), "square", n, nil)
	p.runs[r] = struct{}{}
	r.add(n)
	r.seal()
	jobs := make([]job, n)
	for i := range jobs {
		jobs[i] = job{run: r, index: i, memLimit: 1 << 20}
	}
	return p, r, jobs, tl
}

// TestTallyLateAndEnded checks where a run's counts go: its own while it
// is live, then the Tally's when it ends, with its tasks not run; a result
// that comes after the run ended is an attempt, not a final result; and a
// run's counts, recycled, start at zero.
func TestTallyLateAndEnded(t *testing.T) {
	p, r, jobs, tl := tallyRun(t, 5)
	require.NotNil(t, r.tc)
	p.settle(ptr(okOutcome(&jobs[0], 7, false)))
	// One whose dispatcher knew its duration, 5 µs, from the worker's
	// numbers.
	other := okOutcome(&jobs[3], 8, false)
	other.dur, other.durKnown = 5*time.Microsecond, true
	p.settle(&other)
	killed := okOutcome(&jobs[1], 7, false)
	killed.res.Status, killed.res.Error = StatusKilled, "worker killed by SIGKILL while running the task"
	killed.death = &death{Signal: "SIGKILL"}
	p.settle(&killed)
	require.Equal(t, uint64(2), r.tc.status[StatusOK].tasks)
	require.Equal(t, uint64(1), r.tc.status[StatusKilled].attempts)
	require.Zero(t, tl.rest.status[StatusOK].tasks, "a live run counts apart")
	c := tl.Read()
	require.Equal(t, map[Status]uint64{StatusOK: 2, StatusKilled: 1}, c.Tasks)

	r.abort(context.Canceled) // tasks 2 and 4 not run
	require.True(t, isDone(r))
	require.Nil(t, r.tc, "an ended run counts in the Tally's own")
	require.Empty(t, tl.runs)
	c = tl.Read()
	require.Equal(t, map[Status]uint64{StatusOK: 2, StatusKilled: 1, StatusNotRun: 2}, c.Tasks)
	require.Equal(t, map[Status]uint64{StatusOK: 2, StatusKilled: 1}, c.Attempts)

	// An outcome that comes after its map ended is dropped, as it is by
	// a TaskObserver's records.
	p.settle(ptr(okOutcome(&jobs[4], 7, false)))
	require.Equal(t, c, tl.Read())
	// One whose map ended while it was settled (between settle's look at
	// the map and the delivery): an attempt, not a result.
	late := okOutcome(&jobs[2], 7, false)
	require.False(t, r.deliver(&late.res, 7, nil, nil, false))
	c = tl.Read()
	require.Equal(t, map[Status]uint64{StatusOK: 2, StatusKilled: 1, StatusNotRun: 2}, c.Tasks)
	require.Equal(t, map[Status]uint64{StatusOK: 3, StatusKilled: 1}, c.Attempts)
	require.Equal(t, uint64(4), c.Duration.Count())
	// Durations: task 0's 1000 ns and the killed attempt's 1001 (from
	// okOutcome's times), 5 µs (as the dispatcher knew it), 7 ns (the
	// late one's, as given): two at most the 1 µs bound, two over it.
	require.Equal(t, []uint64{2, 2}, c.Duration.Counts)
	require.Equal(t, uint64(1000+1001+5000+7), c.Duration.Sum)

	// The next run starts at zero, whatever counts it was given.
	_, r2, _, _ := tallyRun(t, 1)
	require.Equal(t, tallyCounts{}, *r2.tc)
}
