package pool_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/remote"
	"github.com/safepool/safepool/internal/remote/remotetest"
	"github.com/safepool/safepool/pool"
)

// Tests of the cluster path over the in-memory transport: real agents
// (remote.RunAgent, as 'safepool serve' runs it) with real worker
// processes, and a bus that can cut an agent off, with or without the
// disconnect advisory, and deliver what it sent late.

var buses = remotetest.Register("mem:")

// testCluster is a bus with agents on it.
type testCluster struct {
	t      *testing.T
	target string
	bus    *remotetest.Bus
	agents map[string]*remotetest.Agent
	stops  map[string]func()
}

func newTestCluster(t *testing.T) *testCluster {
	b, target := buses.New(strings.ReplaceAll(t.Name(), "/", "_"))
	tc := &testCluster{t: t, target: target, bus: b, agents: map[string]*remotetest.Agent{}, stops: map[string]func(){}}
	t.Cleanup(func() {
		for _, stop := range tc.stops {
			stop()
		}
		b.Close()
	})
	return tc
}

// agent starts an agent with workers worker processes.
func (tc *testCluster) agent(name string, workers int) *remotetest.Agent {
	return tc.agentInstance(name, workers, "")
}

// agentInstance starts an agent whose instance is instance ("" for a
// random one).
func (tc *testCluster) agentInstance(name string, workers int, instance string) *remotetest.Agent {
	return tc.agentWith(remote.AgentConfig{Name: name, Instance: instance, Workers: workers})
}

// agentWith starts an agent with cfg, on the tests' compilation cache.
func (tc *testCluster) agentWith(cfg remote.AgentConfig) *remotetest.Agent {
	name := cfg.Name
	cfg.CacheDir = cacheDir(tc.t)
	a := tc.bus.NewAgent(name)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := remote.RunAgent(ctx, cfg, a, a.Subscribe); err != nil {
			tc.t.Errorf("agent %s: %v", name, err)
		}
	}()
	tc.agents[name] = a
	tc.stops[name] = func() { cancel(); <-done }
	return a
}

// stopAgent shuts an agent down as SIGTERM does.
func (tc *testCluster) stopAgent(name string) {
	tc.stops[name]()
	delete(tc.stops, name)
}

func (tc *testCluster) pool(t *testing.T, edit func(*pool.Config)) *pool.Pool {
	return newPool(t, "tasks", func(c *pool.Config) {
		c.Cluster = tc.target
		if edit != nil {
			edit(c)
		}
	})
}

// The seed scenario on a cluster: an agent's worker is SIGKILLed while it
// runs task 3, under each policy.
func TestClusterSeed(t *testing.T) {
	ctx := context.Background()
	tc := newTestCluster(t)
	tc.agent("a1", 2)
	t.Run("skip", func(t *testing.T) {
		k := newKiller(3)
		p := tc.pool(t, func(c *pool.Config) { c.OnEvent = k.onEvent })
		rs, err := p.Map(ctx, "slow_square", ints(10))
		require.NoError(t, err)
		require.Equal(t, []string{"0", "1", "4", "<killed>", "16", "25", "36", "49", "64", "81"}, squares(t, rs))
		require.Contains(t, rs[3].Error, "killed by SIGKILL")
		require.Contains(t, rs[3].Error, "agent a1 on host")
		kts := p.KilledTasks()
		require.Len(t, kts, 1)
		require.Equal(t, 3, kts[0].Index)
		require.Equal(t, "SIGKILL", kts[0].Signal)
		require.Equal(t, "a1", kts[0].Attempts[0].Stats.Agent)
		for i, r := range rs {
			require.Equal(t, 1, r.Attempts, "task %d", i)
			require.Equal(t, "a1", r.Stats.Agent, "task %d", i)
			require.NotZero(t, r.Stats.WorkerPID, "task %d", i)
		}
	})
	t.Run("retry", func(t *testing.T) {
		k := newKiller(3)
		p := tc.pool(t, func(c *pool.Config) { c.OnEvent = k.onEvent; c.KillPolicy = pool.Retry })
		rs, err := p.Map(ctx, "slow_square", ints(10))
		require.NoError(t, err)
		require.Equal(t, []string{"0", "1", "4", "9", "16", "25", "36", "49", "64", "81"}, squares(t, rs))
		require.Equal(t, 2, rs[3].Attempts)
		require.Empty(t, p.KilledTasks())
	})
	t.Run("abort", func(t *testing.T) {
		k := newKiller(3)
		p := tc.pool(t, func(c *pool.Config) { c.OnEvent = k.onEvent; c.KillPolicy = pool.Abort })
		_, err := p.Map(ctx, "slow_square", ints(10))
		require.ErrorIs(t, err, pool.ErrTaskKilled)
		require.Contains(t, err.Error(), "task 3")
		rs, err := p.Map(ctx, "square", ints(5))
		require.NoError(t, err)
		require.Equal(t, []string{"0", "1", "4", "9", "16"}, squares(t, rs))
	})
}

// Retry on a lost agent: every task ends ok, the charged ones after a
// second attempt.
func TestClusterAgentLostRetry(t *testing.T) {
	ctx := context.Background()
	tc := newTestCluster(t)
	a1 := tc.agent("a1", 2)
	starts := newTaskStarts()
	p := tc.pool(t, func(c *pool.Config) { c.OnEvent = starts.onEvent; c.KillPolicy = pool.Retry; c.BatchSize = 2 })
	tc.agent("a2", 2)
	in := make([][]byte, 12)
	for i := range in {
		in[i] = []byte("200")
	}
	h, err := p.MapAsync(ctx, "sleep", in)
	require.NoError(t, err)
	starts.wait(t, 2)
	time.Sleep(300 * time.Millisecond)
	a1.Cut(false, true)
	rs, err := h.Wait(ctx)
	require.NoError(t, err)
	for i, r := range rs {
		require.Equal(t, pool.StatusOK, r.Status, "task %d: %s", i, r.Error)
		require.LessOrEqual(t, r.Attempts, 2)
	}
	require.Empty(t, p.KilledTasks())
}

// An agent in the pool's own process (as "embedded" runs one) is not
// presumed lost when it is silent for longer than the heartbeat timeout, as
// a loaded machine can make it; an agent in another process silent as long
// is, and its running tasks are charged.
func TestClusterInProcessAgentIsNotLostBySilence(t *testing.T) {
	for _, inProcess := range []bool{true, false} {
		t.Run(map[bool]string{true: "in process", false: "another process"}[inProcess], func(t *testing.T) {
			ctx := context.Background()
			tc := newTestCluster(t)
			if inProcess {
				tc.bus.InProcess("beside")
			}
			a1 := tc.agentInstance("a1", 2, "beside")
			starts := newTaskStarts()
			var mu sync.Mutex
			var lost []string
			p := tc.pool(t, func(c *pool.Config) {
				c.BatchSize = 1
				c.OnEvent = func(e pool.Event) {
					starts.onEvent(e)
					if e.Kind == pool.EventWorkerExit && strings.Contains(e.Reason, "lost") {
						mu.Lock()
						lost = append(lost, e.Reason)
						mu.Unlock()
					}
				}
			})
			in := [][]byte{[]byte("300"), []byte("300"), []byte("300"), []byte("300")}
			h, err := p.MapAsync(ctx, "sleep", in)
			require.NoError(t, err)
			starts.wait(t, 1)
			// Silent, with what it sends held back, for longer than the
			// heartbeat timeout (800 ms), and no disconnect advisory.
			a1.Cut(true, false)
			time.Sleep(1600 * time.Millisecond)
			a1.Heal()
			rs, err := h.Wait(ctx)
			require.NoError(t, err)
			mu.Lock()
			defer mu.Unlock()
			if inProcess {
				require.Empty(t, lost)
				for i, r := range rs {
					require.Equal(t, pool.StatusOK, r.Status, "task %d: %s", i, r.Error)
					require.Equal(t, 1, r.Attempts, "task %d", i)
				}
				require.Empty(t, p.KilledTasks())
				return
			}
			require.NotEmpty(t, lost, "a silent agent in another process is presumed lost")
			require.NotEmpty(t, p.KilledTasks(), "its running tasks are charged")
			require.Contains(t, p.KilledTasks()[0].Reason, "no heartbeat")
		})
	}
}

// An agent that shuts down (SIGTERM) gives back what it holds, without
// charge: another agent runs it.
func TestClusterAgentShutdown(t *testing.T) {
	ctx := context.Background()
	tc := newTestCluster(t)
	tc.agent("a1", 2)
	starts := newTaskStarts()
	p := tc.pool(t, func(c *pool.Config) { c.OnEvent = starts.onEvent; c.BatchSize = 2 })
	in := make([][]byte, 10)
	for i := range in {
		in[i] = []byte("100")
	}
	h, err := p.MapAsync(ctx, "sleep", in)
	require.NoError(t, err)
	starts.wait(t, 2)
	tc.agent("a2", 2)
	tc.stopAgent("a1")
	rs, err := h.Wait(ctx)
	require.NoError(t, err)
	for i, r := range rs {
		require.Equal(t, pool.StatusOK, r.Status, "task %d: %s", i, r.Error)
	}
}

// A damaged module object is refused by the agents, and New says so.
func TestClusterDamagedModule(t *testing.T) {
	tc := newTestCluster(t)
	tc.bus.Damage = func(key string, data []byte) []byte {
		data[len(data)/2] ^= 0xff
		return data
	}
	tc.agent("a1", 1)
	_, err := pool.New(context.Background(), pool.Config{Module: squareWasm, Cluster: tc.target, CacheDir: cacheDir(t)})
	require.Error(t, err)
	require.Contains(t, err.Error(), "is damaged")
	require.Contains(t, err.Error(), "agent a1")
}

// No agent: New fails after StartTimeout, and says what to do.
func TestClusterNoAgent(t *testing.T) {
	tc := newTestCluster(t)
	_, err := pool.New(context.Background(), pool.Config{Module: squareWasm, Cluster: tc.target, StartTimeout: 300 * time.Millisecond})
	require.ErrorIs(t, err, pool.ErrNoAgent)
	require.Contains(t, err.Error(), "safepool serve")
}

// An unknown cluster target says how to link the transport.
func TestClusterUnknownTarget(t *testing.T) {
	_, err := pool.New(context.Background(), pool.Config{Module: squareWasm, Cluster: "carrier-pigeon://x"})
	require.ErrorIs(t, err, remote.ErrNoTransport)
	require.Contains(t, err.Error(), "github.com/safepool/safepool/cluster")
}

// Inputs and outputs larger than a message travel as objects.
func TestClusterLargePayloads(t *testing.T) {
	ctx := context.Background()
	tc := newTestCluster(t)
	tc.bus.MaxPayload = 64 << 10
	tc.agent("a1", 1)
	p := tc.pool(t, nil)
	big := []byte(strings.Repeat("y", 200<<10))
	rs, err := p.Map(ctx, "echo", [][]byte{big, []byte("small")})
	require.NoError(t, err)
	require.Equal(t, pool.StatusOK, rs[0].Status, rs[0].Error)
	require.Equal(t, big, rs[0].Output)
	require.Equal(t, "small", string(rs[1].Output))
	rs, err = p.Map(ctx, "big", [][]byte{[]byte("300")})
	require.NoError(t, err)
	require.Equal(t, pool.StatusOK, rs[0].Status, rs[0].Error)
	require.Len(t, rs[0].Output, 300<<10)
}

// Abort reaches the agent: the workers running the cancelled map's tasks
// are killed, and the pool goes on.
func TestClusterCancelStopsAgents(t *testing.T) {
	ctx := context.Background()
	tc := newTestCluster(t)
	tc.agent("a1", 2)
	var mu sync.Mutex
	var pids []int
	p := tc.pool(t, func(c *pool.Config) {
		c.OnEvent = func(e pool.Event) {
			if e.Kind == pool.EventTaskStart {
				mu.Lock()
				pids = append(pids, e.WorkerPID)
				mu.Unlock()
			}
		}
	})
	h, err := p.MapAsync(ctx, "sleep", [][]byte{[]byte("600000"), []byte("600000")})
	require.NoError(t, err)
	eventually(t, 3*time.Minute, func() bool { mu.Lock(); defer mu.Unlock(); return len(pids) == 2 }, "the two tasks did not start, one on each worker")
	h.Cancel()
	eventually(t, 3*time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, pid := range pids {
			if syscall.Kill(pid, 0) == nil {
				return false
			}
		}
		return true
	}, "the workers running the cancelled map's tasks were not stopped")
	rs, err := p.Map(ctx, "square", ints(4))
	require.NoError(t, err)
	require.Equal(t, []string{"0", "1", "4", "9"}, squares(t, rs))
}

// The retry's memory gate is checked on the agent that is to run the
// retry: one whose machine stays short of memory gives up on the task,
// which keeps its killed status and says where the gate was.
func TestClusterMemoryGateOnAgent(t *testing.T) {
	ctx := context.Background()
	tc := newTestCluster(t)
	tc.agent("a1", 2)
	restore := pool.SetMemAvailable(func() (int64, error) { return 1 << 20, nil })
	defer restore()
	k := newKiller(3)
	p := tc.pool(t, func(c *pool.Config) {
		c.OnEvent = k.onEvent
		c.KillPolicy = pool.Retry
		c.Retry.MinAvailable = 1 << 40
		c.Retry.GateTimeout = 300 * time.Millisecond
	})
	rs, err := p.Map(ctx, "slow_square", ints(6))
	require.NoError(t, err)
	require.Equal(t, []string{"0", "1", "4", "<killed>", "16", "25"}, squares(t, rs))
	require.Contains(t, rs[3].Error, "not retried: memory gate")
	require.Contains(t, rs[3].Error, "agent a1 on host")
	require.Equal(t, 1, rs[3].Attempts)
	require.Len(t, p.KilledTasks(), 1)
}

// A chunk delivered again to the agent that holds it runs once: its
// workers end n tasks for a map of n, and every task ends once with its
// own result.
func TestClusterChunkDeliveredTwiceRunsOnce(t *testing.T) {
	tc := newTestCluster(t)
	tc.bus.DeliverTwice = true
	var ended atomic.Int64
	tc.agentWith(remote.AgentConfig{Name: "a1", Workers: 2, Observer: func(e any) {
		if e.(pool.Event).Kind == pool.EventTaskEnd {
			ended.Add(1)
		}
	}})
	p := tc.pool(t, nil)
	const n = 40
	rs, err := p.Map(context.Background(), "slow_square", ints(n))
	require.NoError(t, err)
	want := make([]string, n)
	for i := range want {
		want[i] = strconv.Itoa(i * i)
		require.Equal(t, 1, rs[i].Attempts, "task %d", i)
	}
	require.Equal(t, want, squares(t, rs))
	require.Equal(t, int64(n), ended.Load(), "tasks the agent's workers ended")
}

// An agent lost while chunks it fetched from the work queue wait unclaimed
// in its buffer: the pool sends every unclaimed chunk again at once, and
// another agent runs them, each task once and without charge. (The bus,
// unlike a stream, never gives a fetched chunk to another agent by
// itself: without the new copies the map would never end.)
func TestClusterAgentLostSendsUnclaimedChunksAgain(t *testing.T) {
	tc := newTestCluster(t)
	tc.agent("a1", 2)
	var mu sync.Mutex
	lost := map[string]bool{}
	p := tc.pool(t, func(c *pool.Config) {
		c.BatchSize = 1
		c.OnEvent = func(e pool.Event) {
			if e.Kind == pool.EventWorkerExit && strings.Contains(e.Reason, " lost: ") {
				mu.Lock()
				lost[e.Agent] = true
				mu.Unlock()
			}
		}
	})
	// a1 goes, and the pool presumes it lost before any chunk exists.
	tc.stopAgent("a1")
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return lost["a1"] }, 30*time.Second, 5*time.Millisecond)

	// The hoarder fetches every chunk of the map and claims none.
	hoarder := tc.bus.NewAgent("hoarder")
	hoarder.SetInstance("hoarder-1")
	const n = 8
	hctx, hstop := context.WithCancel(context.Background())
	var fetched atomic.Int64
	hdone := make(chan struct{})
	go func() {
		defer close(hdone)
		for fetched.Load() < n {
			c, err := hoarder.Next(hctx)
			if err != nil {
				return
			}
			fetched.Add(int64(c.Len()))
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := p.MapAsync(ctx, "square", ints(n))
	require.NoError(t, err)
	select {
	case <-hdone:
	case <-ctx.Done():
		t.Fatalf("the hoarder fetched %d tasks of %d", fetched.Load(), n)
	}
	hstop()
	require.EqualValues(t, n, fetched.Load())

	// Another agent joins, and the hoarder disconnects.
	tc.agent("a2", 2)
	hoarder.Cut(false, true)
	rs, err := h.Wait(ctx)
	require.NoError(t, err, "the chunks the hoarder fetched never ran")
	require.Equal(t, []string{"0", "1", "4", "9", "16", "25", "36", "49"}, squares(t, rs))
	for i, r := range rs {
		require.Equal(t, 1, r.Attempts, "task %d", i)
		require.Equal(t, "a2", r.Stats.Agent, "task %d", i)
	}
	require.Empty(t, p.KilledTasks())
}

// An agent whose MaxMemory is below the pool's memory cap gives every task
// back: with no other agent, each task fails once it was given back
// maxReleases times, with the agent's reason, and none ran.
func TestClusterAgentRefusesTasksOverItsMaxMemory(t *testing.T) {
	tc := newTestCluster(t)
	var ended atomic.Int64
	tc.agentWith(remote.AgentConfig{Name: "a1", Workers: 1, MaxMemory: 16 << 20, Observer: func(e any) {
		if e.(pool.Event).Kind == pool.EventTaskEnd {
			ended.Add(1)
		}
	}})
	p := tc.pool(t, func(c *pool.Config) { c.MemoryLimit = 64 << 20 })
	rs, err := p.Map(context.Background(), "square", ints(3))
	require.NoError(t, err)
	for i, r := range rs {
		require.Equal(t, pool.StatusError, r.Status, "task %d", i)
		require.Contains(t, r.Error, "gave the task back 20 times", "task %d", i)
		require.Contains(t, r.Error, "runs tasks with at most 16 MiB of memory", "task %d", i)
	}
	require.Zero(t, ended.Load(), "tasks the agent's workers ended")
}
