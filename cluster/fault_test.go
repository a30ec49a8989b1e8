package cluster_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/cluster"
	"github.com/safepool/safepool/internal/enginetest"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/pool"
)

// Fault tests of a pool on a cluster of three servers in this process,
// with agents running as child processes of the test binary (re-run in
// agent mode): SIGKILL of a remote worker, SIGKILL of an agent with and
// without the disconnect advisory, SIGSTOP/SIGCONT of an agent, the
// stream leader's shutdown mid-map, and a damaged module object.

// In agent mode (SAFEPOOL_TEST_AGENT_URL set) the test binary runs an
// agent until SIGTERM. Its workers are the test binary again, in worker
// mode, which package sandbox runs before this.
func init() {
	urls := os.Getenv("SAFEPOOL_TEST_AGENT_URL")
	if urls == "" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	workers, _ := strconv.Atoi(os.Getenv("SAFEPOOL_TEST_AGENT_WORKERS"))
	err := cluster.RunAgent(ctx, urls, cluster.Options{}, cluster.AgentConfig{
		Name: os.Getenv("SAFEPOOL_TEST_AGENT_NAME"), Workers: max(workers, 1), CacheDir: os.Getenv("SAFEPOOL_TEST_AGENT_CACHE"),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// natsCluster is three servers in this process and agent processes.
type natsCluster struct {
	t       *testing.T
	urls    string
	servers map[string]*cluster.Server
	cache   string

	mu     sync.Mutex
	agents map[string]*exec.Cmd
	n      int
}

// newNATSCluster starts three routed servers; the task stream has three
// replicas.
func newNATSCluster(t *testing.T) *natsCluster {
	ports := freePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	nc := &natsCluster{t: t, servers: map[string]*cluster.Server{}, cache: enginetest.CacheDir(t), agents: map[string]*exec.Cmd{}}
	var urls []string
	for i, name := range []string{"s1", "s2", "s3"} {
		s := startServer(t, cluster.ServerConfig{Name: name, ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes})
		nc.servers[name] = s
		urls = append(urls, s.ClientURL())
	}
	nc.urls = strings.Join(urls, ",")
	return nc
}

// agent starts an agent process with two workers, named a1, a2, …; it
// is stopped with SIGTERM when the test ends, if still alive.
func (c *natsCluster) agent() string {
	c.mu.Lock()
	c.n++
	name := fmt.Sprintf("a%d", c.n)
	c.mu.Unlock()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SAFEPOOL_TEST_AGENT_URL="+c.urls, "SAFEPOOL_TEST_AGENT_NAME="+name,
		"SAFEPOOL_TEST_AGENT_WORKERS=2", "SAFEPOOL_TEST_AGENT_CACHE="+c.cache)
	cmd.Stderr = os.Stderr
	require.NoError(c.t, cmd.Start())
	c.mu.Lock()
	c.agents[name] = cmd
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return name
}

// signal sends sig to the agent process name.
func (c *natsCluster) signal(name string, sig syscall.Signal) {
	c.mu.Lock()
	cmd := c.agents[name]
	c.mu.Unlock()
	require.NoError(c.t, syscall.Kill(cmd.Process.Pid, sig))
}

// pool is a pool on the cluster, with the "tasks" module.
func (c *natsCluster) pool(t *testing.T, opts cluster.Options, edit func(*pool.Config)) *pool.Pool {
	return enginetest.NewPool(t, "tasks", func(cfg *pool.Config) {
		cfg.Cluster, cfg.ClusterOptions = c.urls, opts
		if edit != nil {
			edit(cfg)
		}
	})
}

// events records a pool's events; its onEvent goes in Config.OnEvent.
// kill lists task indexes whose worker it SIGKILLs as they start.
type events struct {
	mu   sync.Mutex
	all  []pool.Event
	kill map[int]bool
}

func (e *events) onEvent(ev pool.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
	if ev.Kind == pool.EventTaskStart && e.kill[ev.Index] {
		delete(e.kill, ev.Index)
		_ = syscall.Kill(ev.WorkerPID, syscall.SIGKILL)
	}
}

// wait waits for an event that match accepts, and returns it.
func (e *events) wait(t *testing.T, what string, match func(pool.Event) bool) pool.Event {
	t.Helper()
	var got pool.Event
	require.Eventually(t, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, ev := range e.all {
			if match(ev) {
				got = ev
				return true
			}
		}
		return false
	}, time.Minute, 10*time.Millisecond, "no event: %s", what)
	return got
}

// checkLost checks a map in which agent victim was lost: one result per
// index, each ok or killed; the killed ones are the tasks the victim's
// workers ran (one or two: it has two workers), charged once with why,
// and they are exactly the pool's killed list. No outcome of an attempt
// the victim ran when it was lost (at since) is taken: an ok result from
// it ended before since, or started after back, when it was back (zero:
// never).
func checkLost(t *testing.T, p *pool.Pool, rs []pool.Result, n int, victim, why string, since, back time.Time) {
	t.Helper()
	require.Len(t, rs, n)
	var killed []int
	for i, r := range rs {
		require.Equal(t, i, r.Index)
		switch r.Status {
		case pool.StatusOK:
			require.Equal(t, "slept", string(r.Output))
			if r.Stats.Agent == victim {
				rerun := !back.IsZero() && r.Stats.Start.After(back)
				require.True(t, r.Stats.End.Before(since) || rerun, "task %d: an outcome %s sent after it was lost was taken", i, victim)
			}
		case pool.StatusKilled:
			killed = append(killed, i)
			require.Contains(t, r.Error, "agent "+victim+" on host")
			require.Contains(t, r.Error, why)
			require.Equal(t, 1, r.Attempts)
		default:
			t.Fatalf("task %d: %s %s", i, r.Status, r.Error)
		}
	}
	require.NotEmpty(t, killed, "a task the lost agent ran was charged")
	require.LessOrEqual(t, len(killed), 2, "only the tasks the lost agent's workers ran are charged")
	var listed []int
	for _, kt := range p.KilledTasks() {
		listed = append(listed, kt.Index)
	}
	slices.Sort(listed)
	require.Equal(t, killed, listed, "the killed list")
}

func sleeps(n, ms int) [][]byte {
	in := make([][]byte, n)
	for i := range in {
		in[i] = []byte(strconv.Itoa(ms))
	}
	return in
}

func TestClusterFaults(t *testing.T) {
	ctx := context.Background()
	c := newNATSCluster(t)
	c.agent()
	c.agent()
	if _, soak := clusterChaosTime(t); soak {
		t.Run("chaos", func(t *testing.T) { testClusterChaos(t, c) })
		return
	}

	t.Run("worker SIGKILL", func(t *testing.T) {
		ev := &events{kill: map[int]bool{3: true}}
		p := c.pool(t, cluster.Options{}, func(cfg *pool.Config) { cfg.OnEvent = ev.onEvent })
		rs, err := p.Map(ctx, "slow_square", enginetest.Ints(10))
		require.NoError(t, err)
		require.Equal(t, []string{"0", "1", "4", "<killed>", "16", "25", "36", "49", "64", "81"}, enginetest.Squares(t, rs))
		require.Contains(t, rs[3].Error, "killed by SIGKILL")
		kts := p.KilledTasks()
		require.Len(t, kts, 1)
		require.Equal(t, 3, kts[0].Index)
		require.Equal(t, "SIGKILL", kts[0].Signal)
		for i, r := range rs {
			require.Equal(t, 1, r.Attempts, "task %d", i)
			require.NotEmpty(t, r.Stats.Agent, "task %d", i)
		}
	})

	// An agent SIGKILLed while its workers run tasks: the pool hears of
	// it from the server's advisory, or, without, from its silence.
	for _, advisory := range []bool{true, false} {
		name, opts, why := "agent SIGKILL/advisory", cluster.Options{}, "disconnected"
		if !advisory {
			name, opts, why = "agent SIGKILL/heartbeat", cluster.WithoutAdvisories(cluster.Options{Logf: func(string, ...any) {}}), "no heartbeat"
		}
		t.Run(name, func(t *testing.T) {
			ev := &events{}
			p := c.pool(t, opts, func(cfg *pool.Config) { cfg.OnEvent = ev.onEvent; cfg.BatchSize = 2 })
			h, err := p.MapAsync(ctx, "sleep", sleeps(16, 600))
			require.NoError(t, err)
			victim := ev.wait(t, "a task starts", func(e pool.Event) bool { return e.Kind == pool.EventTaskStart }).Agent
			time.Sleep(300 * time.Millisecond) // a heartbeat lists it; it runs for 600 ms
			at := time.Now()
			c.signal(victim, syscall.SIGKILL)
			lost := ev.wait(t, victim+" lost", func(e pool.Event) bool {
				return e.Kind == pool.EventWorkerExit && e.Agent == victim && strings.Contains(e.Reason, "lost")
			})
			// A measurement, not a check: how soon the pool knew.
			t.Logf("%s: the pool presumed the agent dead %s after the SIGKILL", name, lost.Time.Sub(at).Round(time.Millisecond))
			rs, err := h.Wait(ctx)
			require.NoError(t, err)
			checkLost(t, p, rs, 16, victim, why, at, time.Time{})
			c.agent() // a replacement
		})
	}

	// An agent stopped (SIGSTOP) mid-map is presumed dead from its
	// silence; once continued, what it sends for that map is dropped, and
	// it may take work again.
	t.Run("agent SIGSTOP then SIGCONT", func(t *testing.T) {
		ev := &events{}
		p := c.pool(t, cluster.Options{}, func(cfg *pool.Config) { cfg.OnEvent = ev.onEvent; cfg.BatchSize = 2 })
		h, err := p.MapAsync(ctx, "sleep", sleeps(16, 600))
		require.NoError(t, err)
		victim := ev.wait(t, "a task starts", func(e pool.Event) bool { return e.Kind == pool.EventTaskStart }).Agent
		time.Sleep(300 * time.Millisecond)
		c.signal(victim, syscall.SIGSTOP)
		at := time.Now()
		ev.wait(t, victim+" lost", func(e pool.Event) bool {
			return e.Kind == pool.EventWorkerExit && e.Agent == victim && strings.Contains(e.Reason, "lost")
		})
		back := time.Now()
		c.signal(victim, syscall.SIGCONT)
		rs, err := h.Wait(ctx)
		require.NoError(t, err)
		checkLost(t, p, rs, 16, victim, "no heartbeat", at, back)
		rs, err = p.Map(ctx, "slow_square", enginetest.Ints(20))
		require.NoError(t, err)
		require.Equal(t, "361", enginetest.Squares(t, rs)[19])
	})

	// A module object whose bytes do not match its key: every agent
	// refuses it, and New says which.
	t.Run("damaged module object", func(t *testing.T) {
		wasm, err := os.ReadFile(testguest.Path(t, "tasks"))
		require.NoError(t, err)
		wasm = append(wasm, 0, 4, 3, 'x', 'y', 'z') // a custom section: another module, another key
		sum := sha256.Sum256(wasm)
		key := hex.EncodeToString(sum[:])
		bad := slices.Clone(wasm)
		bad[len(bad)/2] ^= 0xff // the same size: the pool does not store it again
		conn, err := nats.Connect(c.urls)
		require.NoError(t, err)
		defer conn.Close()
		js, err := jetstream.New(conn)
		require.NoError(t, err)
		obj, err := js.ObjectStore(ctx, "safepool-objects")
		require.NoError(t, err)
		_, err = obj.PutBytes(ctx, key, bad)
		require.NoError(t, err)
		_, err = pool.New(ctx, pool.Config{ModuleBytes: wasm, Cluster: c.urls, Workers: 2, CacheDir: c.cache})
		require.Error(t, err)
		require.ErrorContains(t, err, "damaged")
		require.ErrorContains(t, err, key)
	})

	// The stream's leader shuts down mid-map: the others elect another,
	// clients reconnect, and the map ends whole.
	t.Run("stream leader shutdown", func(t *testing.T) {
		ev := &events{}
		p := c.pool(t, cluster.Options{}, func(cfg *pool.Config) { cfg.OnEvent = ev.onEvent; cfg.BatchSize = 2 })
		conn, err := nats.Connect(c.urls)
		require.NoError(t, err)
		defer conn.Close()
		js, err := jetstream.New(conn)
		require.NoError(t, err)
		st, err := js.Stream(ctx, "SAFEPOOL_TASKS")
		require.NoError(t, err)
		leader := waitForCurrentReplicas(t, st)
		h, err := p.MapAsync(ctx, "slow_square", enginetest.Ints(200))
		require.NoError(t, err)
		ev.wait(t, "a task starts", func(e pool.Event) bool { return e.Kind == pool.EventTaskStart })
		c.servers[leader].Shutdown()
		rs, err := h.Wait(ctx)
		require.NoError(t, err)
		for i, s := range enginetest.Squares(t, rs) {
			require.Equal(t, strconv.Itoa(i*i), s, "task %d: %s", i, rs[i].Error)
			require.Equal(t, 1, rs[i].Attempts, "task %d", i)
		}
		require.Empty(t, p.KilledTasks())
	})

	t.Run("chaos", func(t *testing.T) { testClusterChaos(t, c) })
}

// testClusterChaos runs the chaos on c, with two agents of its own.
func testClusterChaos(t *testing.T, c *natsCluster) {
	d, soak := clusterChaosTime(t)
	live := []string{c.agent(), c.agent()}
	var fig clusterFigures
	runClusterChaos(t, c, live, d, &fig)
	t.Logf("cluster chaos: %s", &fig)
	if soak {
		fmt.Printf("cluster chaos: %s\n", &fig)
	}
	require.Zero(t, fig.hangs.Load(), "hangs")
	require.Zero(t, fig.lost.Load(), "lost results")
	require.Zero(t, fig.doubled.Load(), "doubled results")
	require.NotZero(t, fig.maps.Load(), "no map ran")
	require.NotZero(t, fig.workerKills.Load()+fig.agentKills.Load()+fig.stops.Load(), "the monkey did nothing: the test tested nothing")
}
