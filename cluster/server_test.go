package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/cluster"
	"github.com/safepool/safepool/internal/remote"
)

func TestServerConfigRefusals(t *testing.T) {
	cases := []struct {
		name string
		cfg  cluster.ServerConfig
		want string
	}{
		{"public listen without auth", cluster.ServerConfig{Listen: "0.0.0.0:-1"},
			"0.0.0.0:-1 is reachable from other machines; require a token, a user and password, or an nkey"},
		{"all interfaces without auth", cluster.ServerConfig{Listen: ":-1"}, "is reachable from other machines"},
		{"public cluster port without a secret", cluster.ServerConfig{ClusterListen: "0.0.0.0:-1", Routes: []string{"nats://h:6222"}, NKeys: []string{"UABC"}},
			"routes authenticate with a token or a user's password"},
		{"user without password", cluster.ServerConfig{User: "u"}, "a user needs a password"},
		{"bad listen", cluster.ServerConfig{Listen: "4222"}, `listen address "4222" is not HOST:PORT`},
		{"bad port", cluster.ServerConfig{Listen: "127.0.0.1:x"}, `bad port "x"`},
		{"cluster port without routes", cluster.ServerConfig{ClusterListen: "127.0.0.1:-1"}, "a clustered server needs routes"},
		{"routes without a cluster port", cluster.ServerConfig{Routes: []string{"nats://h:6222"}}, "need a cluster listen address"},
		{"bad route", cluster.ServerConfig{ClusterListen: "127.0.0.1:-1", Routes: []string{"::"}}, "is not a URL"},
		{"TLS without key", cluster.ServerConfig{TLSCert: "c.pem"}, "needs both a certificate and its key"},
		{"TLS files missing", cluster.ServerConfig{TLSCert: "/nonexistent/c.pem", TLSKey: "/nonexistent/k.pem"}, "cluster: TLS:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := cluster.StartServer(tc.cfg)
			if srv != nil {
				srv.Shutdown()
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
	_, err := cluster.StartServer(cluster.ServerConfig{Listen: "0.0.0.0:-1"})
	require.ErrorIs(t, err, cluster.ErrNoAuth)
}

// loopbackURL is srv's URL on 127.0.0.1, for a server that listens on
// every interface.
func loopbackURL(t *testing.T, srv *cluster.Server) string {
	u, err := url.Parse(srv.ClientURL())
	require.NoError(t, err)
	return "nats://127.0.0.1:" + u.Port()
}

func TestTokenIsRequired(t *testing.T) {
	srv := startServer(t, cluster.ServerConfig{Listen: "0.0.0.0:-1", Token: "s3cret"})
	addr := loopbackURL(t, srv)

	_, err := remote.Open(context.Background(), remote.OpenConfig{Target: addr}, newFakePool())
	require.ErrorContains(t, err, "uthorization")

	_, err = remote.Open(context.Background(), remote.OpenConfig{Target: addr, Options: cluster.Options{Token: "wrong"}}, newFakePool())
	require.ErrorContains(t, err, "uthorization")

	openPool(t, addr, cluster.Options{Token: "s3cret"})
	openPool(t, strings.Replace(addr, "nats://", "nats://s3cret@", 1), nil)
}

func TestUserAndPasswordAreRequired(t *testing.T) {
	srv := startServer(t, cluster.ServerConfig{Listen: "0.0.0.0:-1", User: "u", Password: "p"})
	addr := loopbackURL(t, srv)
	_, err := remote.Open(context.Background(), remote.OpenConfig{Target: addr}, newFakePool())
	require.ErrorContains(t, err, "uthorization")
	openPool(t, addr, cluster.Options{User: "u", Password: "p"})
	_, err = remote.Open(context.Background(), remote.OpenConfig{Target: addr, Options: cluster.Options{User: "u"}}, newFakePool())
	require.ErrorContains(t, err, "a user needs a password")
}

func TestEmbeddedRunsAnAgentBesideThePool(t *testing.T) {
	got := swapRunAgent(t)
	h := newFakePool()
	c, err := remote.Open(context.Background(), remote.OpenConfig{Target: "embedded", Workers: 3, Spares: 1, CacheDir: "/cache"}, h)
	require.NoError(t, err)
	a := <-got
	require.Equal(t, 3, a.cfg.Workers)
	require.Equal(t, 1, a.cfg.Spares)
	require.Equal(t, "/cache", a.cfg.CacheDir)
	require.NotEmpty(t, a.cfg.Instance)
	// The pool knows the agent beside it, and no other, is in its process.
	ip, isIP := c.(remote.InProcessAgents)
	require.True(t, isIP)
	require.True(t, ip.InProcessAgent(a.cfg.Instance))
	require.False(t, ip.InProcessAgent("another"))
	require.False(t, ip.InProcessAgent(""))

	require.NoError(t, send(context.Background(), c, chunk(c.Pool(), 1, 2)))
	ch := nextChunk(t, a)
	ok, err := a.t.Claim(context.Background(), &remote.Claim{Pool: c.Pool(), Chunk: ch.ID, Agent: agentOf(a)})
	require.NoError(t, err)
	require.True(t, ok)

	// Close stops the agent (the stand-in returns when its context is
	// done), then the server.
	require.NoError(t, c.Close())
	_, err = a.t.Next(context.Background())
	require.Error(t, err, "the server is gone")
}

func TestEmbeddedNeedsAnAgent(t *testing.T) {
	old := remote.RunAgent
	remote.RunAgent = nil
	defer func() { remote.RunAgent = old }()
	_, err := remote.Open(context.Background(), remote.OpenConfig{Target: "embedded"}, newFakePool())
	require.ErrorIs(t, err, cluster.ErrNoAgent)
	require.ErrorIs(t, cluster.Serve(context.Background(), cluster.ServeConfig{}), cluster.ErrNoAgent)
	require.ErrorIs(t, cluster.RunAgent(context.Background(), "nats://127.0.0.1:1", cluster.Options{}, cluster.AgentConfig{}), cluster.ErrNoAgent)
}

func TestServeRunsAnAgentUntilItsContextEnds(t *testing.T) {
	got := swapRunAgent(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *cluster.Server, 1)
	done := make(chan error, 1)
	go func() {
		done <- cluster.Serve(ctx, cluster.ServeConfig{
			Server: cluster.ServerConfig{Listen: "0.0.0.0:-1", NKeys: []string{"UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"}},
			Agent:  cluster.AgentConfig{Name: "beside"},
			Ready:  func(s *cluster.Server) { ready <- s },
		})
	}()
	srv := <-ready
	a := <-got
	require.Equal(t, "beside", a.cfg.Name)
	// Clients need an nkey; the agent beside the server has its own.
	_, err := nats.Connect(loopbackURL(t, srv))
	require.ErrorContains(t, err, "uthorization")
	cancel()
	require.NoError(t, <-done)
}

func TestThreeServersKeepChunksWhenTheStreamLeaderStops(t *testing.T) {
	ports := freePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	servers := map[string]*cluster.Server{}
	var urls []string
	for i, name := range []string{"s1", "s2", "s3"} {
		s := startServer(t, cluster.ServerConfig{Name: name, ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes})
		servers[name] = s
		urls = append(urls, s.ClientURL())
	}
	all := strings.Join(urls, ",")
	c, _ := openPool(t, all, nil)
	a := startAgent(t, all, cluster.Options{})

	nc, err := nats.Connect(all)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st, err := js.Stream(context.Background(), "SAFEPOOL_TASKS")
	require.NoError(t, err)
	info, err := st.Info(context.Background())
	require.NoError(t, err)
	require.Equal(t, 3, info.Config.Replicas)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range uint64(10) {
		require.NoError(t, send(ctx, c, chunk(c.Pool(), i, 1)))
	}
	seen, unanswered := map[uint64]bool{}, map[uint64]bool{}
	claim := func() uint64 {
		for {
			ch := nextChunk(t, a)
			ok, err := a.t.Claim(ctx, &remote.Claim{Pool: c.Pool(), Chunk: ch.ID, Agent: agentOf(a)})
			if err != nil {
				// The pool's connection was on the stopped server and
				// is moving: nobody answers the claim for a moment, and
				// the transport returns the chunk to the work queue, as
				// an agent does. The claim may also get no answer in
				// time, and then the pool may have granted it.
				require.True(t, errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded), "claim: %v", err)
				require.NoError(t, ctx.Err())
				unanswered[ch.ID] = errors.Is(err, context.DeadlineExceeded)
				continue
			}
			if ok {
				return ch.ID
			}
			// A chunk delivered again across the leader change: the pool
			// granted it once already and refuses the copy.
			require.True(t, seen[ch.ID] || unanswered[ch.ID], "chunk %d refused though never granted", ch.ID)
			if unanswered[ch.ID] {
				return ch.ID // granted when the answer was lost
			}
		}
	}
	for range 3 {
		seen[claim()] = true
	}

	// Wait until the followers are current, then stop the leader.
	leader := waitForCurrentReplicas(t, st)
	servers[leader].Shutdown()

	for len(seen) < 10 {
		seen[claim()] = true
	}
	// A chunk sent while the stream elects its new leader may get no
	// answer from the stream: the pool sends it again (and refuses a copy
	// stored twice), as here.
	for {
		err := send(ctx, c, chunk(c.Pool(), 10, 1))
		if err == nil {
			break
		}
		require.True(t, errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout), "send: %v", err)
		time.Sleep(100 * time.Millisecond)
	}
	for !seen[10] {
		seen[claim()] = true
	}
	for i := range uint64(11) {
		require.True(t, seen[i], "chunk %d", i)
	}
}

// freePorts finds n ports free at the moment, for servers that must know
// each other's cluster ports before they start.
func freePorts(t *testing.T, n int) []int {
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// waitForCurrentReplicas waits until every replica of st is current and
// returns its leader's name.
func waitForCurrentReplicas(t *testing.T, st jetstream.Stream) string {
	t.Helper()
	for range 300 {
		info, err := st.Info(context.Background())
		require.NoError(t, err)
		cl := info.Cluster
		current := cl != nil && cl.Leader != "" && len(cl.Replicas) == 2
		for _, r := range cl.Replicas {
			current = current && r.Current
		}
		if current {
			return cl.Leader
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal(fmt.Sprintf("the stream's replicas did not catch up"))
	return ""
}
