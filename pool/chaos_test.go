package pool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/pool"
)

// The chaos test kills workers from outside, with real SIGKILLs, while
// several maps share a pool, and checks the pool's promises after every map:
// it ends (no hang), every index has exactly one final result (nothing lost,
// nothing doubled), and the policy held.
//
// By default it runs for a few seconds per policy. SAFEPOOL_SOAK=5m runs it
// for that long in all (split over the policies) and prints its figures:
//
//	SAFEPOOL_SOAK=5m go test -run TestChaos -count=1 -timeout 0 -v ./pool/

// chaosTime returns how long each policy's chaos lasts, and whether this is
// a soak run.
func chaosTime(t *testing.T) (time.Duration, bool) {
	v := os.Getenv("SAFEPOOL_SOAK")
	if v == "" {
		return 3 * time.Second, false
	}
	d, err := time.ParseDuration(v)
	require.NoError(t, err, "SAFEPOOL_SOAK must be a duration such as 5m")
	return d / 3, true
}

// mapDeadline is how long one map may take, kills included, before the test
// calls it a hang. Workers of a Go guest take a while to start under -race,
// and every kill costs a restart.
const mapDeadline = 90 * time.Second

// figures counts what a chaos run did.
type figures struct {
	maps, tasks, aborted                       atomic.Int64
	handshakeKills, taskKills, randomKills     atomic.Int64
	lastKill                                   atomic.Int64 // Unix nanoseconds
	retries, killedTasks, hangs, lost, doubled atomic.Int64
}

func (f *figures) kills() int64 {
	return f.handshakeKills.Load() + f.taskKills.Load() + f.randomKills.Load()
}

func (f *figures) String() string {
	return fmt.Sprintf("maps=%d tasks=%d kills=%d (handshake=%d mid-task=%d random=%d) retries=%d killed_tasks=%d aborted_maps=%d hangs=%d lost=%d doubled=%d",
		f.maps.Load(), f.tasks.Load(), f.kills(), f.handshakeKills.Load(), f.taskKills.Load(), f.randomKills.Load(),
		f.retries.Load(), f.killedTasks.Load(), f.aborted.Load(), f.hangs.Load(), f.lost.Load(), f.doubled.Load())
}

// chaosMonkey kills workers: right after their handshake and as they start a
// task (through events, for pools that have them), and at random moments
// (from a goroutine that picks among the process's children).
type chaosMonkey struct {
	fig *figures

	mu  sync.Mutex
	rng *rand.Rand
	on  bool

	// pace is how long a worker takes to start; the random killer waits 2
	// to 6 times that between kills, so that workers get work done.
	pace time.Duration

	stop chan struct{}
	done chan struct{}
}

func newMonkey(fig *figures, seed uint64) *chaosMonkey {
	return &chaosMonkey{fig: fig, rng: rand.New(rand.NewPCG(seed, 42)), stop: make(chan struct{}), done: make(chan struct{})}
}

func (m *chaosMonkey) chance(p float64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.on && m.rng.Float64() < p
}

// onEvent kills a quarter of new workers right after their handshake, and
// about one task start in 150.
func (m *chaosMonkey) onEvent(e pool.Event) {
	switch {
	case e.Kind == pool.EventWorkerStart && m.chance(0.25):
		m.kill(e.WorkerPID, &m.fig.handshakeKills)
	case e.Kind == pool.EventTaskStart && m.chance(1.0/150):
		m.kill(e.WorkerPID, &m.fig.taskKills)
	}
}

// start turns the monkey on and starts the random killer: at random
// moments it kills one of this process's children: mid-batch, mid-task,
// during a handshake or while results are written, as it happens.
func (m *chaosMonkey) start(t *testing.T, pace time.Duration) {
	m.pace = max(pace, 10*time.Millisecond)
	m.mu.Lock()
	m.on = true
	m.mu.Unlock()
	go func() {
		defer close(m.done)
		for {
			m.mu.Lock()
			wait := 2*m.pace + time.Duration(m.rng.Int64N(int64(4*m.pace)))
			m.mu.Unlock()
			select {
			case <-m.stop:
				return
			case <-time.After(wait):
			}
			kids := children(t)
			if len(kids) == 0 {
				continue
			}
			m.mu.Lock()
			pid, _ := strconv.Atoi(kids[m.rng.IntN(len(kids))])
			m.mu.Unlock()
			m.kill(pid, &m.fig.randomKills)
		}
	}()
}

// kill SIGKILLs pid and counts it in n. It counts first: the pool may see
// the death, and end a map, before the line after the kill runs.
func (m *chaosMonkey) kill(pid int, n *atomic.Int64) {
	n.Add(1)
	m.fig.lastKill.Store(time.Now().UnixNano())
	if syscall.Kill(pid, syscall.SIGKILL) != nil {
		n.Add(-1) // already gone
	}
}

// halt stops all killing and waits for the killer to return.
func (m *chaosMonkey) halt() {
	m.mu.Lock()
	m.on = false
	m.mu.Unlock()
	close(m.stop)
	<-m.done
}

// chaosMap is one kind of map the chaos test runs: a function, how many
// tasks, and the output each index must have.
type chaosMap struct {
	fn     string
	n      int
	input  func(i int) []byte
	output func(i int) []byte
}

var chaosMaps = []chaosMap{
	// Thousands of tiny tasks: many per batch, so kills land mid-batch.
	{"square", 4000, itoa, func(i int) []byte { return itoa(i * i) }},
	// Tasks that sleep 30 ms: kills land mid-task.
	{"slow_square", 30, itoa, func(i int) []byte { return itoa(i * i) }},
	// 256 KiB outputs: kills land while results are written.
	{"big", 40, func(int) []byte { return []byte("256") }, func(int) []byte { return bytes.Repeat([]byte("x"), 256<<10) }},
}

func itoa(i int) []byte { return []byte(strconv.Itoa(i)) }

func TestChaos(t *testing.T) {
	d, soak := chaosTime(t)
	// wchaos starts in milliseconds, so the monkey can kill often. The Go
	// guest takes seconds to start under -race, so it joins in soak runs.
	modules := []string{"wchaos"}
	if soak {
		modules = append(modules, "tasks")
	}
	before := children(t)
	fds := openFDs(t)
	var all figures
	for _, policy := range []pool.Policy{pool.Retry, pool.Skip, pool.Abort} {
		t.Run(policy.String(), func(t *testing.T) {
			var fig figures
			// With events: handshake and mid-task kills, one task per frame.
			// Without: the batch ABI, random kills only.
			for _, module := range modules {
				for _, events := range []bool{true, false} {
					name := module + "/batched"
					if events {
						name = module + "/events"
					}
					t.Run(name, func(t *testing.T) {
						runChaos(t, module, policy, events, d/time.Duration(2*len(modules)), &fig)
					})
				}
			}
			t.Logf("%s: %s", policy, &fig)
			if soak {
				fmt.Printf("chaos %s: %s\n", policy, &fig)
			}
			require.Zero(t, fig.hangs.Load(), "hangs")
			require.Zero(t, fig.lost.Load(), "lost results")
			require.Zero(t, fig.doubled.Load(), "doubled results")
			require.NotZero(t, fig.kills(), "the monkey killed nothing: the test tested nothing")
			for _, c := range []struct {
				sum *atomic.Int64
				v   int64
			}{{&all.maps, fig.maps.Load()}, {&all.tasks, fig.tasks.Load()}, {&all.aborted, fig.aborted.Load()},
				{&all.handshakeKills, fig.handshakeKills.Load()}, {&all.taskKills, fig.taskKills.Load()},
				{&all.randomKills, fig.randomKills.Load()}, {&all.retries, fig.retries.Load()},
				{&all.killedTasks, fig.killedTasks.Load()}, {&all.hangs, fig.hangs.Load()},
				{&all.lost, fig.lost.Load()}, {&all.doubled, fig.doubled.Load()}} {
				c.sum.Add(c.v)
			}
		})
	}
	t.Logf("all: %s", &all)
	if soak {
		fmt.Printf("chaos total: %s\n", &all)
		// Start-up storms: the lifecycle tests run one of each kind; a
		// soak runs them for a quarter as long again.
		t.Run("storms", func(t *testing.T) {
			var sf stormFigures
			runStorms(t, d*3/4, &sf)
			fmt.Printf("chaos storms: %s\n", &sf)
			require.Zero(t, sf.hangs.Load(), "hangs")
			require.Zero(t, sf.lost.Load(), "lost or wrong results")
		})
	}
	// Every worker of every pool was reaped: no children, zombies included
	// (a zombie is still listed as a child), and no descriptors left.
	eventually(t, 5*time.Second, func() bool { return len(children(t)) == len(before) }, "workers left behind")
	require.ElementsMatch(t, before, children(t))
	require.Equal(t, fds, openFDs(t), "descriptors leaked")
}

// runChaos runs rounds of concurrent maps on one pool under the monkey for
// d, then checks the pool still serves a clean map and reaps everything.
func runChaos(t *testing.T, module string, policy pool.Policy, events bool, d time.Duration, fig *figures) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	monkey := newMonkey(fig, seed)
	began := time.Now()
	p := newPool(t, module, func(c *pool.Config) {
		c.KillPolicy = policy
		c.Retry = pool.RetryPolicy{MaxAttempts: 1000, Backoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
		c.BatchSize = 64
		c.KilledLimit = 1 << 30 // the streamed maps find their killed tasks in the pool's list
		if events {
			c.OnEvent = monkey.onEvent
		}
	})
	monkey.start(t, time.Since(began))
	end := time.Now().Add(d)
	round := 0
	for time.Now().Before(end) {
		var wg sync.WaitGroup
		for k, cm := range chaosMaps {
			streamed := !events && (round+k)%2 == 1
			wg.Go(func() { checkChaosMap(t, p, policy, cm, streamed, fig) })
		}
		wg.Wait()
		round++
	}
	monkey.halt()
	if t.Failed() {
		return
	}

	// The pool still serves, and Terminate reaps every worker.
	rs, err := p.Map(context.Background(), "square", ints(100))
	require.NoError(t, err)
	for i, r := range rs {
		require.Equal(t, strconv.Itoa(i*i), string(r.Output), "after the chaos, task %d: %s", i, r.Error)
	}
	require.NoError(t, p.Terminate())
	require.Empty(t, children(t), "workers left after Terminate")
}

// checkChaosMap runs one map (or, streamed, the same tasks through
// ImapUnordered) and checks its results against the policy.
func checkChaosMap(t *testing.T, p *pool.Pool, policy pool.Policy, cm chaosMap, streamed bool, fig *figures) {
	inputs := make([][]byte, cm.n)
	for i := range inputs {
		inputs[i] = cm.input(i)
	}
	fig.maps.Add(1)
	fig.tasks.Add(int64(cm.n))
	killedBefore := len(p.KilledTasks())
	kills := fig.kills()

	var (
		results []pool.Result
		err     error
		killed  []pool.KilledTask
		count   = make([]int, cm.n) // final results per index
	)
	if streamed {
		ctx, cancel := context.WithTimeout(context.Background(), mapDeadline)
		defer cancel()
		results = make([]pool.Result, cm.n)
		for r, e := range p.ImapUnordered(ctx, cm.fn, slices.Values(inputs), 0) {
			if e != nil {
				err = e
				break
			}
			count[r.Index]++
			results[r.Index] = r
			fig.retries.Add(int64(max(r.Attempts-1, 0)))
		}
		if errors.Is(err, context.DeadlineExceeded) {
			fig.hangs.Add(1)
			t.Errorf("%s: the stream did not end within %s", cm.fn, mapDeadline)
			return
		}
		// This map's killed tasks: the pool's list grew by them (maps on
		// one pool run concurrently, so match by function too). The list
		// is updated just after the stream yields, so wait for it.
		want := 0
		for _, r := range results {
			if r.Status.IsKilledTask() {
				want++
			}
		}
		listed := func() []pool.KilledTask {
			var ks []pool.KilledTask
			for _, kt := range p.KilledTasks()[killedBefore:] {
				if kt.Func == cm.fn && kt.Index < cm.n && bytes.Equal(kt.Input, inputs[kt.Index]) {
					ks = append(ks, kt)
				}
			}
			return ks
		}
		for wait := time.Now().Add(time.Second); len(listed()) < want && time.Now().Before(wait); {
			time.Sleep(5 * time.Millisecond)
		}
		killed = listed()
	} else {
		m, e := p.MapAsync(context.Background(), cm.fn, inputs)
		require.NoError(t, e)
		select {
		case <-m.Done():
		case <-time.After(mapDeadline):
			fig.hangs.Add(1)
			t.Errorf("%s: the map did not end within %s (progress %+v)", cm.fn, mapDeadline, m.Progress())
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			m.Cancel()
			return
		}
		results, err = m.Wait(context.Background())
		killed = m.KilledTasks()
		fig.retries.Add(int64(m.Progress().Retried))
		for _, r := range results {
			if r.Status != 0 {
				count[r.Index]++
			}
		}
		if err == nil {
			// Done counts deliveries: a doubled result would show here.
			if got := m.Progress().Done; got != cm.n {
				fig.doubled.Add(1)
				t.Errorf("%s: %d final results for %d tasks", cm.fn, got, cm.n)
			}
		}
	}
	fig.killedTasks.Add(int64(len(killed)))

	if policy == pool.Abort && err != nil {
		fig.aborted.Add(1)
		var te *pool.TaskError
		if !errors.As(err, &te) {
			t.Errorf("%s: abort gave %v, want a *pool.TaskError", cm.fn, err)
			return
		}
		if !errors.Is(err, pool.ErrTaskKilled) || te.Status != pool.StatusKilled || !strings.Contains(te.Reason, "SIGKILL") {
			t.Errorf("%s: abort error does not name the kill: %v", cm.fn, err)
		}
		if !bytes.Equal(te.Input, inputs[te.Index]) {
			t.Errorf("%s: the abort error names task %d with the wrong input", cm.fn, te.Index)
		}
		if fig.kills() == kills {
			t.Errorf("%s: aborted with no kill during the map", cm.fn)
		}
		// Prompt: the error came back soon after the kill that caused it
		// (the last kill is that one or a later one), not after the rest
		// of the map.
		if since := time.Since(time.Unix(0, fig.lastKill.Load())); since > 5*time.Second {
			t.Errorf("%s: the abort came back %s after the last kill", cm.fn, since)
		}
		return
	}
	if err != nil {
		t.Errorf("%s under %s: %v", cm.fn, policy, err)
		return
	}

	killedIdx := map[int]pool.KilledTask{}
	for _, kt := range killed {
		if _, dup := killedIdx[kt.Index]; dup {
			fig.doubled.Add(1)
			t.Errorf("%s: task %d listed twice as killed", cm.fn, kt.Index)
		}
		killedIdx[kt.Index] = kt
	}
	for i, r := range results {
		switch {
		case count[i] == 0:
			fig.lost.Add(1)
			t.Errorf("%s: task %d has no result", cm.fn, i)
			continue
		case count[i] > 1:
			fig.doubled.Add(1)
			t.Errorf("%s: task %d has %d results", cm.fn, i, count[i])
			continue
		case r.Index != i:
			t.Errorf("%s: slot %d holds the result of task %d", cm.fn, i, r.Index)
			continue
		}
		kt, listed := killedIdx[i]
		switch {
		case r.Status == pool.StatusOK:
			if !bytes.Equal(r.Output, cm.output(i)) {
				t.Errorf("%s: task %d output is wrong (%d bytes)", cm.fn, i, len(r.Output))
			}
			if listed {
				t.Errorf("%s: task %d is ok but listed as killed", cm.fn, i)
			}
		case policy == pool.Retry:
			t.Errorf("%s under retry: task %d ended %s after %d attempts: %s", cm.fn, i, r.Status, r.Attempts, r.Error)
		case !listed:
			t.Errorf("%s: task %d ended %s but is not in KilledTasks: %s", cm.fn, i, r.Status, r.Error)
		default:
			// Skip: the slot is empty and the killed-task list says why.
			if r.Status != pool.StatusKilled || r.Output != nil || !strings.Contains(r.Error, "killed by SIGKILL") {
				t.Errorf("%s: task %d: status %s, output %d bytes, error %q", cm.fn, i, r.Status, len(r.Output), r.Error)
			}
			if kt.Status != pool.StatusKilled || kt.Signal != "SIGKILL" || kt.Func != cm.fn ||
				!bytes.Equal(kt.Input, inputs[i]) || len(kt.Attempts) == 0 || !strings.Contains(kt.Reason, "SIGKILL") {
				t.Errorf("%s: killed task %d lacks its cause: %+v", cm.fn, i, kt)
			}
		}
	}
	if policy != pool.Retry {
		for i := range killedIdx {
			if results[i].Status == pool.StatusOK {
				t.Errorf("%s: task %d is listed as killed but ok", cm.fn, i)
			}
		}
	}
}

// stormFigures counts what the start-up storms of a soak did.
type stormFigures struct {
	storms, endless, kills, tasks, trips, recoveries, hangs, lost atomic.Int64
}

func (f *stormFigures) String() string {
	return fmt.Sprintf("storms=%d (ridden out) endless=%d kills=%d tasks=%d breaker_trips=%d recoveries=%d hangs=%d lost=%d",
		f.storms.Load(), f.endless.Load(), f.kills.Load(), f.tasks.Load(), f.trips.Load(), f.recoveries.Load(), f.hangs.Load(), f.lost.Load())
}

// runStorms alternates, for d, two kinds of start-up storm on one pool,
// each killing every worker as soon as it appears: a short one (0.2 to
// 1.5 s, under StartGiveUp) that a running map must ride out with every
// task ok under retry, and an endless one, under which a map must end by
// itself with a *StartError, after which the pool must recover.
func runStorms(t *testing.T, d time.Duration, fig *stormFigures) {
	const giveUp = 2 * time.Second
	p := newPool(t, "wchaos", func(c *pool.Config) {
		c.KillPolicy = pool.Retry
		c.Retry = pool.RetryPolicy{MaxAttempts: 1000, Backoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
		c.StartGiveUp = giveUp
	})
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for end := time.Now().Add(d); time.Now().Before(end) && !t.Failed(); {
		s := startStorm()
		m, err := p.MapAsync(context.Background(), "slow_square", ints(40))
		require.NoError(t, err)
		time.Sleep(200*time.Millisecond + time.Duration(rng.Int64N(int64(1300*time.Millisecond))))
		fig.kills.Add(s.stop())
		fig.storms.Add(1)
		select {
		case <-m.Done():
		case <-time.After(mapDeadline):
			fig.hangs.Add(1)
			t.Fatalf("a map did not end after a storm (progress %+v)", m.Progress())
		}
		rs, err := m.Wait(context.Background())
		require.NoError(t, err, "a storm shorter than StartGiveUp failed the map")
		for i, r := range rs {
			fig.tasks.Add(1)
			if r.Status != pool.StatusOK || string(r.Output) != strconv.Itoa(i*i) {
				fig.lost.Add(1)
				t.Errorf("after a storm, task %d: %s %q", i, r.Status, r.Error)
			}
		}

		s = startStorm()
		for _, pid := range children(t) { // the storm sees only new children
			n, _ := strconv.Atoi(pid)
			_ = syscall.Kill(n, syscall.SIGKILL)
		}
		fig.endless.Add(1)
		done := make(chan error, 1)
		go func() { _, err := p.Map(context.Background(), "square", ints(10)); done <- err }()
		select {
		case err = <-done:
		case <-time.After(giveUp + mapDeadline):
			fig.hangs.Add(1)
			t.Fatal("a map under an endless storm did not end")
		}
		var se *pool.StartError
		require.ErrorAs(t, err, &se)
		fig.trips.Add(1)
		fig.kills.Add(s.stop())
		ok := false
		for wait := time.Now().Add(mapDeadline); time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
			if ok = p.Err() == nil; ok {
				break
			}
		}
		if !ok {
			fig.hangs.Add(1)
			t.Fatal("the pool did not recover after an endless storm")
		}
		fig.recoveries.Add(1)
	}
}
