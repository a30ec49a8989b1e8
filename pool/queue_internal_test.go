package pool

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func woken(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func testJobs(n int) []*job {
	r := &run{}
	js := make([]*job, n)
	for i := range js {
		js[i] = &job{run: r, index: i}
	}
	return js
}

// TestQueueWakesMostRecentIdle: one job wakes one driver, the one that went
// idle last (its worker is the one still polling its pipe).
func TestQueueWakesMostRecentIdle(t *testing.T) {
	q := newQueue()
	a, b := make(chan struct{}, 1), make(chan struct{}, 1)
	require.True(t, q.wait(a))
	require.True(t, q.wait(b))
	q.push(testJobs(1)...)
	assert.True(t, woken(b), "the most recently idle driver is woken")
	assert.False(t, woken(a), "one job wakes one driver")
	require.Len(t, q.pop(10, 2, nil), 1)

	// Many jobs wake every idle driver.
	require.True(t, q.wait(b))
	q.push(testJobs(5)...)
	assert.True(t, woken(a))
	assert.True(t, woken(b))
	assert.False(t, q.wait(a), "jobs are waiting: no need to sleep")
}

// TestQueueUnwaitPassesWakeOn: a driver that stops waiting for another
// reason (its worker died) after a push chose it hands the wake-up on, so
// the job does not sit while another driver sleeps.
func TestQueueUnwaitPassesWakeOn(t *testing.T) {
	q := newQueue()
	a, b := make(chan struct{}, 1), make(chan struct{}, 1)
	require.True(t, q.wait(a))
	require.True(t, q.wait(b))
	q.push(testJobs(1)...) // wakes b
	q.unwait(b)            // ... which is busy with its worker's death
	assert.True(t, woken(a), "the wake-up went to the other idle driver")
	assert.False(t, woken(b), "b's unused wake-up was consumed")

	// Unwaiting a driver no push chose just takes it off the stack.
	require.Len(t, q.pop(10, 2, nil), 1)
	require.True(t, q.wait(a))
	q.unwait(a)
	q.push(testJobs(1)...)
	assert.False(t, woken(a), "an unwaited driver is not woken")
}

// TestQueuePushFrontWakes: jobs put back after a death wake idle drivers.
func TestQueuePushFrontWakes(t *testing.T) {
	q := newQueue()
	a := make(chan struct{}, 1)
	require.True(t, q.wait(a))
	js := testJobs(2)
	q.pushFront(js)
	assert.True(t, woken(a))
	got := q.pop(1, 1, nil)
	require.Len(t, got, 1, "pop takes at most max jobs")
	assert.Same(t, js[0], got[0], "put-back jobs keep their order")
}

// TestQueueEarlyIdle: a driver may register before it is done (to be first
// in line for its caller's next task); registering again does not add it
// twice, and a driver that pops work is taken off the stack with its
// wake-up dropped, so the next push wakes a driver that is really idle.
func TestQueueEarlyIdle(t *testing.T) {
	q := newQueue()
	a, b := make(chan struct{}, 1), make(chan struct{}, 1)
	require.True(t, q.wait(b))
	require.True(t, q.wait(a))
	require.True(t, q.wait(a), "registering again is fine")
	assert.Len(t, q.idle, 2, "... and registers once")

	q.push(testJobs(1)...)
	assert.Len(t, q.pop(10, 2, a), 1)
	assert.False(t, woken(a), "the busy driver's wake-up was dropped")
	assert.NotContains(t, q.idle, a)

	q.push(testJobs(1)...)
	assert.True(t, woken(b), "the next job wakes the idle driver")
}

// TestQueueSegments: a map's tasks wait as one segment and become jobs as
// they are popped, in order, after any job put back in front; a finished
// run's segment is dropped whole.
func TestQueueSegments(t *testing.T) {
	q := newQueue()
	inputs := make([][]byte, 10)
	for i := range inputs {
		inputs[i] = []byte{byte('a' + i)}
	}
	r := &run{memLimit: 1 << 20, inputs: inputs}
	q.pushRun(r, len(inputs))
	back := testJobs(1)[0]
	q.pushFront([]*job{back})
	require.False(t, q.empty())

	got := q.pop(4, 1, nil)
	require.Len(t, got, 4)
	assert.Same(t, back, got[0], "a put-back job comes first")
	for k, j := range got[1:] {
		assert.Same(t, r, j.run)
		assert.Equal(t, k, j.index)
		assert.Equal(t, inputs[k], j.input)
		assert.Equal(t, int64(1<<20), j.memLimit)
	}
	var rest []int
	for !q.empty() {
		for _, j := range q.pop(100, 1, nil) {
			rest = append(rest, j.index)
		}
	}
	assert.Equal(t, []int{3, 4, 5, 6, 7, 8, 9}, rest, "every task once, in order")

	// A finished run's queued tasks are dropped, not made into jobs.
	done := &run{memLimit: 1 << 20, inputs: inputs}
	done.isDone.Store(true)
	q.pushRun(done, len(inputs))
	q.pushRun(r, 2)
	got = q.pop(100, 1, nil)
	require.Len(t, got, 2)
	assert.Same(t, r, got[0].run)
	assert.True(t, q.empty())
	assert.Nil(t, q.pop(100, 1, nil))
}
