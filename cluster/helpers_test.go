package cluster_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/cluster"
	"github.com/safepool/safepool/internal/remote"
)

// fakePool is a remote.Handler that records what reaches it, in order,
// and grants the claims it is told to.
type fakePool struct {
	mu     sync.Mutex
	events []string
	grant  func(*remote.Claim) bool
	ch     chan string // every event, as it comes
}

func newFakePool() *fakePool {
	return &fakePool{ch: make(chan string, 1000), grant: func(*remote.Claim) bool { return true }}
}

func (p *fakePool) add(e string) {
	p.mu.Lock()
	p.events = append(p.events, e)
	p.mu.Unlock()
	p.ch <- e
}

func (p *fakePool) Ready(r *remote.Ready) { p.add("ready " + r.Agent.Instance + " " + r.Err) }
func (p *fakePool) Claim(c *remote.Claim) bool {
	ok := p.grant(c)
	p.add(fmt.Sprintf("claim %d %v", c.Chunk, ok))
	return ok
}
func (p *fakePool) Results(r *remote.Results) {
	p.add(fmt.Sprintf("results %d %s", r.Results[0].ID, r.Results[0].Output))
}
func (p *fakePool) Heartbeat(h *remote.Heartbeat) {
	p.add(fmt.Sprintf("hb %d %v", h.Seq, h.Holding))
}
func (p *fakePool) Release(r *remote.Release) { p.add(fmt.Sprintf("release %v %s", r.IDs, r.Why)) }
func (p *fakePool) AgentLost(instance, why string) {
	p.add("lost " + instance + " " + why)
}
func (p *fakePool) Reconnected() { p.add("reconnected") }

// next waits for the next event, bounded so that a broken transport fails
// the test instead of hanging it.
func (p *fakePool) next(t *testing.T) string {
	t.Helper()
	select {
	case e := <-p.ch:
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no event reached the pool")
		return ""
	}
}

// fakeAgent is an AgentHandler that records the control messages.
type fakeAgent struct{ ch chan string }

func (a *fakeAgent) Prepare(s *remote.Spec) { a.ch <- "prepare " + s.Pool + " " + s.Name }
func (a *fakeAgent) Stop(s *remote.Stop) {
	a.ch <- fmt.Sprintf("stop %s %v %v", s.Pool, s.All, s.Chunks)
}

func (a *fakeAgent) next(t *testing.T) string {
	t.Helper()
	select {
	case e := <-a.ch:
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no control message reached the agent")
		return ""
	}
}

// agentSide is the transport an agent got, from a stand-in for the
// pool's RunAgent that hands it to the test.
type agentSide struct {
	t        remote.AgentTransport
	cfg      remote.AgentConfig
	h        *fakeAgent
	stop     context.CancelFunc
	done     chan error
	instance string
}

// swapRunAgent replaces remote.RunAgent for one test; the stand-in
// subscribes a fakeAgent, sends the transport on got and waits for its
// context.
func swapRunAgent(t *testing.T) chan *agentSide {
	got := make(chan *agentSide, 4)
	old := remote.RunAgent
	remote.RunAgent = func(ctx context.Context, cfg remote.AgentConfig, tr remote.AgentTransport, subscribe func(remote.AgentHandler) error) error {
		h := &fakeAgent{ch: make(chan string, 100)}
		if err := subscribe(h); err != nil {
			return err
		}
		got <- &agentSide{t: tr, cfg: cfg, h: h, instance: cfg.Instance}
		<-ctx.Done()
		return ctx.Err()
	}
	t.Cleanup(func() { remote.RunAgent = old })
	return got
}

// startAgent runs an agent connected to url with the stand-in RunAgent.
func startAgent(t *testing.T, url string, opts cluster.Options) *agentSide {
	t.Helper()
	got := swapRunAgent(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cluster.RunAgent(ctx, url, opts, cluster.AgentConfig{Name: "test"}) }()
	var a *agentSide
	select {
	case a = <-got:
	case err := <-done:
		cancel()
		t.Fatalf("the agent stopped: %v", err)
	}
	a.stop, a.done = cancel, done
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return a
}

// startServer starts a server for one test.
func startServer(t *testing.T, cfg cluster.ServerConfig) *cluster.Server {
	t.Helper()
	srv, err := cluster.StartServer(cfg)
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	return srv
}

// openPool opens a pool's side of the transport on url.
func openPool(t *testing.T, url string, opts any) (remote.Coordinator, *fakePool) {
	t.Helper()
	h := newFakePool()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := remote.Open(ctx, remote.OpenConfig{Target: url, Options: opts}, h)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, h
}

// chunk is a chunk of n tasks of pool.
func chunk(pool string, id uint64, n int) *remote.Chunk {
	c := &remote.Chunk{ID: id, Spec: remote.Spec{Pool: pool, Name: "tasks.wasm", Module: "ab"}}
	for i := range n {
		c.Tasks = append(c.Tasks, remote.Task{ID: id*1000 + uint64(i), Func: "square", Input: []byte(fmt.Sprint(i))})
	}
	return c
}

// send sends ch to c's pool's work queue.
func send(ctx context.Context, c remote.Coordinator, ch *remote.Chunk) error {
	return c.Send(ctx, ch.ID, remote.MarshalChunk(ch))
}

// tasks are c's tasks, read from the message.
func tasks(c *remote.Chunk) []remote.Task {
	var out []remote.Task
	for _, t := range c.All() {
		out = append(out, *t)
	}
	return out
}

// nextChunk waits for the agent's next chunk.
func nextChunk(t *testing.T, a *agentSide) *remote.Chunk {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := a.t.Next(ctx)
	require.NoError(t, err)
	return c
}

func TestMain(m *testing.M) {
	if name := os.Getenv("SAFEPOOL_TEST_AGENT_CONN"); name != "" {
		helperAgentConn(name)
		return
	}
	os.Exit(m.Run())
}

// startPlainServer starts a server the way a NATS user would, without
// this package: it keeps disconnect advisories in the system account.
func startPlainServer(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	require.NoError(t, err)
	s.Start()
	require.True(t, s.ReadyForConnections(30*time.Second))
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}
