package cluster_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
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
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/safepool/safepool/cluster"
	"github.com/safepool/safepool/internal/enginetest"
	"github.com/safepool/safepool/internal/remote"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/pool"
	"github.com/safepool/safepool/tracing"
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
	cfg := cluster.AgentConfig{
		Name: os.Getenv("SAFEPOOL_TEST_AGENT_NAME"), Workers: max(workers, 1), CacheDir: os.Getenv("SAFEPOOL_TEST_AGENT_CACHE"),
	}
	if dir := os.Getenv("SAFEPOOL_TEST_AGENT_STUCK"); dir != "" {
		// Workers that never finish starting: each leaves its PID in dir
		// and waits, without a handshake, until the agent dies (Pdeathsig).
		cfg.WorkerCommand = []string{"/bin/sh", "-c", "echo > " + dir + "/$$; while :; do sleep 0.1; done"}
	}
	// Its log goes to stderr, where the test reads that it is up.
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "agent: "+format+"\n", args...) }
	err := cluster.RunAgent(ctx, urls, cluster.Options{Logf: logf}, cfg)
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
// is stopped with SIGTERM when the test ends, if still alive. env is
// added to its environment.
func (c *natsCluster) agent(env ...string) string {
	c.mu.Lock()
	c.n++
	name := fmt.Sprintf("a%d", c.n)
	c.mu.Unlock()
	cmd := agentCommand(c.urls, name, c.cache, env...)
	// Its stderr is copied to the test's; the line saying it is ready
	// (subscribed, about to pull chunks) is waited for.
	stderr, err := cmd.StderrPipe()
	require.NoError(c.t, err)
	require.NoError(c.t, cmd.Start())
	up := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		readAgentLog(stderr, up, os.Stderr)
	}()
	c.mu.Lock()
	c.agents[name] = cmd
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { <-copied; _ = cmd.Wait(); close(done) }()
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
	select {
	case <-up:
	case <-done:
		c.t.Fatalf("agent %s ended before it was ready", name)
	case <-time.After(time.Minute):
		c.t.Fatalf("agent %s not ready within a minute", name)
	}
	return name
}

// agentCommand is an agent process of two workers named name on urls:
// this test binary in agent mode (see init), with env added to its
// environment.
func agentCommand(urls, name, cache string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SAFEPOOL_TEST_AGENT_URL="+urls, "SAFEPOOL_TEST_AGENT_NAME="+name,
		"SAFEPOOL_TEST_AGENT_WORKERS=2", "SAFEPOOL_TEST_AGENT_CACHE="+cache)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// readAgentLog reads an agent's stderr until it ends, copying each line to
// echo unless it is nil, and closes up at the line saying that the agent
// is ready.
func readAgentLog(stderr io.Reader, up chan struct{}, echo io.Writer) {
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if echo != nil {
			fmt.Fprintln(echo, sc.Text())
		}
		if up != nil && strings.Contains(sc.Text(), " ready with ") {
			close(up)
			up = nil
		}
	}
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

// checkTally checks what the pool counted in a Tally of a map whose
// results are rs: each final result by its status, and each attempt, the
// failed ones (Result.Failed, those lost with an agent among them) and the
// ok ones, by how it ended.
func checkTally(t *testing.T, tally *pool.Tally, rs []pool.Result) {
	t.Helper()
	tasks, attempts := map[pool.Status]uint64{}, map[pool.Status]uint64{}
	for _, r := range rs {
		tasks[r.Status]++
		for _, f := range r.Failed {
			attempts[f.Status]++
		}
		if r.Status == pool.StatusOK {
			attempts[pool.StatusOK]++
		}
	}
	require.NotZero(t, attempts[pool.StatusKilled], "no attempt was lost: the test tested nothing")
	c := tally.Read()
	require.Equal(t, tasks, c.Tasks)
	require.Equal(t, attempts, c.Attempts)
}

// checkSpans checks the spans a tracer made of a map's attempts (package
// tracing): one per task, each naming the agent and host of its result,
// and a task charged with its agent's loss ending in an error that says
// so.
func checkSpans(t *testing.T, rec *tracetest.SpanRecorder, rs []pool.Result) {
	t.Helper()
	spans := map[int][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		for _, kv := range s.Attributes() {
			if kv.Key == "safepool.task.index" {
				spans[int(kv.Value.AsInt64())] = append(spans[int(kv.Value.AsInt64())], s)
			}
		}
	}
	require.Len(t, spans, len(rs), "tasks with spans")
	for i, r := range rs {
		require.Len(t, spans[i], 1, "task %d: one attempt, one span", i)
		s := spans[i][0]
		require.Contains(t, s.Attributes(), attribute.String("safepool.agent", r.Stats.Agent), "task %d", i)
		require.Contains(t, s.Attributes(), attribute.String("safepool.host", r.Stats.Host), "task %d", i)
		require.Contains(t, s.Attributes(), attribute.String("safepool.task.status", r.Status.String()), "task %d", i)
		if r.Status == pool.StatusKilled {
			require.Equal(t, codes.Error, s.Status().Code, "task %d", i)
			require.Equal(t, r.Error, s.Status().Description, "task %d: the span says why, as the result does", i)
		}
	}
}

// wire watches the messages agents send their pools on a connection of
// its own, in the order the servers deliver them: claims and the pool's
// answers, heartbeats and results, by agent name.
type wire struct {
	mu      sync.Mutex
	claims  map[string]string // reply subject → agent
	granted map[string][]uint64
	beats   map[string][][]uint64 // Running of each heartbeat
	results map[string]int        // results messages
}

func watchWire(t *testing.T, urls string) *wire {
	w := &wire{claims: map[string]string{}, granted: map[string][]uint64{}, beats: map[string][][]uint64{}, results: map[string]int{}}
	conn, err := nats.Connect(urls)
	require.NoError(t, err)
	t.Cleanup(conn.Close)
	// One channel for every subscription: the messages stay in the
	// order they came, so a claim is seen before its answer.
	ch := make(chan *nats.Msg, 1<<16)
	for _, subj := range []string{"safepool.to.*.claim", "safepool.to.*.hb", "safepool.to.*.results", "_INBOX.>"} {
		_, err := conn.ChanSubscribe(subj, ch)
		require.NoError(t, err)
	}
	require.NoError(t, conn.Flush())
	go func() {
		for m := range ch {
			w.take(m)
		}
	}()
	t.Cleanup(func() { _ = conn.Drain() })
	return w
}

func (w *wire) take(m *nats.Msg) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case strings.HasSuffix(m.Subject, ".claim"):
		if cl, err := remote.UnmarshalClaim(m.Data); err == nil && m.Reply != "" {
			w.claims[m.Reply] = cl.Agent.Name + " " + strconv.FormatUint(cl.Chunk, 10)
		}
	case strings.HasSuffix(m.Subject, ".hb"):
		if hb, err := remote.UnmarshalHeartbeat(m.Data); err == nil {
			for _, h := range hb.Holding {
				w.beats[hb.Agent.Name] = append(w.beats[hb.Agent.Name], h.Running)
			}
		}
	case strings.HasSuffix(m.Subject, ".results"):
		if rs, err := remote.UnmarshalResults(m.Data); err == nil {
			w.results[rs.Agent.Name]++
		}
	default:
		if claim, ok := w.claims[m.Subject]; ok && len(m.Data) == 1 && m.Data[0] == 1 {
			name, id, _ := strings.Cut(claim, " ")
			n, _ := strconv.ParseUint(id, 10, 64)
			w.granted[name] = append(w.granted[name], n)
		}
	}
}

// wait waits until ok, called under w's lock, is true.
func (w *wire) wait(t *testing.T, what string, ok func() bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return ok()
	}, time.Minute, 2*time.Millisecond, "never on the wire: %s", what)
}

// finals counts each task's final results (EventTaskFinal), through
// Config.Observer.
type finals struct {
	mu sync.Mutex
	n  map[int]int
}

func (f *finals) observe(ev pool.Event) {
	if ev.Kind != pool.EventTaskFinal {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = map[int]int{}
	}
	f.n[ev.Index]++
}

// once checks that each of n tasks had exactly one final result. A task's
// EventTaskFinal is emitted after its result is delivered, so the last one
// may follow the map's end: it first waits until every task has one.
func (f *finals) once(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.n) >= n
	}, 10*time.Second, time.Millisecond, "final results of %d tasks", n)
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range n {
		require.Equal(t, 1, f.n[i], "task %d: final results", i)
	}
	require.Len(t, f.n, n)
}

// pidsGone waits until none of the processes whose PIDs name the files
// in dir is alive: a worker does not outlive its agent.
func pidsGone(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err == nil && syscall.Kill(pid, 0) == nil {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "a worker of the killed agent is still alive")
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
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			tally, err := pool.NewTally([]time.Duration{time.Millisecond, time.Second}, []int64{1 << 20})
			require.NoError(t, err)
			p := c.pool(t, opts, func(cfg *pool.Config) {
				cfg.OnEvent, cfg.Observer, cfg.BatchSize = ev.onEvent, tracing.New(tp).Observe, 2
				cfg.TaskObserver = tally
			})
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
			checkSpans(t, rec, rs)
			checkTally(t, tally, rs)
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

	// An agent SIGKILLed while the workers it starts for the pool have
	// not finished starting, holding chunks it was granted: nothing ran
	// there, so nothing is charged, under either policy; its chunks run
	// elsewhere, each task once. (Chunks it fetched and had not claimed
	// yet are sent again by the pool when it learns of the loss.)
	for _, policy := range []pool.Policy{pool.Retry, pool.Skip} {
		t.Run("agent SIGKILL/workers starting/"+policy.String(), func(t *testing.T) {
			stuck := t.TempDir()
			victim := c.agent("SAFEPOOL_TEST_AGENT_STUCK=" + stuck)
			w := watchWire(t, c.urls)
			f := &finals{}
			p := c.pool(t, cluster.Options{}, func(cfg *pool.Config) {
				cfg.KillPolicy, cfg.Observer, cfg.BatchSize = policy, f.observe, 1
			})
			h, err := p.MapAsync(ctx, "sleep", sleeps(40, 100))
			require.NoError(t, err)
			w.wait(t, victim+" granted a chunk", func() bool { return len(w.granted[victim]) > 0 })
			started, err := os.ReadDir(stuck)
			require.NoError(t, err)
			require.NotEmpty(t, started, "the victim's workers are starting")
			c.signal(victim, syscall.SIGKILL)
			rs, err := h.Wait(ctx)
			require.NoError(t, err)
			require.Len(t, rs, 40)
			for i, r := range rs {
				require.Equal(t, i, r.Index)
				require.Equal(t, pool.StatusOK, r.Status, "task %d: %s", i, r.Error)
				require.Equal(t, "slept", string(r.Output))
				require.Equal(t, 1, r.Attempts, "task %d: nothing ran on the victim, nothing is charged", i)
				require.NotEqual(t, victim, r.Stats.Agent, "task %d", i)
			}
			require.Empty(t, p.KilledTasks())
			f.once(t, 40)
			w.mu.Lock()
			require.Zero(t, w.results[victim], "the victim sent no result")
			w.mu.Unlock()
			pidsGone(t, stuck)
		})
	}

	// An agent SIGKILLed after it was granted a chunk and its worker
	// started a task, before it sent any result (the pool asks for no
	// start notices: OnEvent is nil). Its heartbeats said which task its
	// worker ran: that task is charged one killed attempt, run again
	// under retry, reported killed under skip; the rest of what it held
	// runs elsewhere without charge.
	for _, policy := range []pool.Policy{pool.Retry, pool.Skip} {
		t.Run("agent SIGKILL/claimed, no result yet/"+policy.String(), func(t *testing.T) {
			victim := c.agent()
			w := watchWire(t, c.urls)
			f := &finals{}
			p := c.pool(t, cluster.Options{}, func(cfg *pool.Config) {
				cfg.KillPolicy, cfg.Observer, cfg.BatchSize = policy, f.observe, 1
			})
			const n = 24
			h, err := p.MapAsync(ctx, "sleep", sleeps(n, 1500))
			require.NoError(t, err)
			// Two heartbeats saying its workers run a task: the pool has
			// taken the first before the kill can reach it.
			var running []uint64
			w.wait(t, victim+" runs a task", func() bool {
				var seen int
				for _, r := range w.beats[victim] {
					if len(r) > 0 {
						seen++
						running = r
					}
				}
				return seen >= 2
			})
			w.mu.Lock()
			granted, sent := len(w.granted[victim]), w.results[victim]
			w.mu.Unlock()
			require.NotZero(t, granted, "the victim was granted a chunk")
			require.Zero(t, sent, "the victim sent no result before the kill")
			at := time.Now()
			c.signal(victim, syscall.SIGKILL)
			rs, err := h.Wait(ctx)
			require.NoError(t, err)
			require.Len(t, rs, n)
			var charged []int
			for i, r := range rs {
				require.Equal(t, i, r.Index)
				if r.Attempts == 2 || r.Status == pool.StatusKilled {
					charged = append(charged, i)
				}
				switch {
				case r.Status == pool.StatusKilled:
					require.Equal(t, pool.Skip, policy, "task %d: killed under retry", i)
					require.Contains(t, r.Error, "agent "+victim+" on host")
					require.Regexp(t, "lost while running the task: (disconnected|no heartbeat)", r.Error)
					require.Equal(t, 1, r.Attempts)
				case r.Status == pool.StatusOK:
					require.Equal(t, "slept", string(r.Output))
					require.NotEqual(t, victim, r.Stats.Agent, "task %d: an outcome of the victim was taken", i)
					require.True(t, r.Stats.Start.After(at) || r.Attempts == 1, "task %d", i)
				default:
					t.Fatalf("task %d: %s %s", i, r.Status, r.Error)
				}
			}
			// Exactly the tasks its last heartbeats said it ran (an
			// attempt ID is the task's place in the map, plus one, on the
			// first attempts) are charged.
			require.Len(t, charged, len(running), "charged %v, running %v", charged, running)
			f.once(t, n)
			var listed []int
			for _, kt := range p.KilledTasks() {
				listed = append(listed, kt.Index)
			}
			slices.Sort(listed)
			if policy == pool.Skip {
				require.Equal(t, charged, listed, "the killed list")
			} else {
				require.Empty(t, listed, "a task run again and ended ok is not in the killed list")
			}
		})
	}

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
