package cluster_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/cluster"
	"github.com/safepool/safepool/internal/remote"
)

func TestChunksFlowFromSendToNext(t *testing.T) {
	srv := startServer(t, cluster.ServerConfig{})
	c, p := openPool(t, srv.ClientURL(), nil)
	a := startAgent(t, srv.ClientURL(), cluster.Options{})

	ctx := context.Background()
	require.NoError(t, send(ctx, c, chunk(c.Pool(), 1, 3)))
	require.NoError(t, send(ctx, c, chunk(c.Pool(), 2, 1)))

	got := nextChunk(t, a)
	require.Equal(t, uint64(1), got.ID)
	require.Equal(t, c.Pool(), got.Spec.Pool)
	require.Len(t, tasks(got), 3)
	require.Equal(t, "2", string(tasks(got)[2].Input))

	ok, err := a.t.Claim(ctx, &remote.Claim{Pool: c.Pool(), Chunk: got.ID, Agent: agentOf(a)})
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "claim 1 true", p.next(t))

	// The pool says no to the second: the agent must not run it.
	p.grant = func(*remote.Claim) bool { return false }
	got = nextChunk(t, a)
	require.Equal(t, uint64(2), got.ID)
	ok, err = a.t.Claim(ctx, &remote.Claim{Pool: c.Pool(), Chunk: got.ID, Agent: agentOf(a)})
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, "claim 2 false", p.next(t))

	// The granted chunk's acknowledgement was confirmed before Claim
	// returned: the stream holds at most the refused one, which it drops.
	info := streamInfo(t, srv.ClientURL())
	require.LessOrEqual(t, info.State.Msgs, uint64(1))
}

func agentOf(a *agentSide) remote.Agent {
	return remote.Agent{Name: "test", Host: "here", Instance: a.instance, Workers: 1}
}

func streamInfo(t *testing.T, url string) *jetstream.StreamInfo {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st, err := js.Stream(context.Background(), "SAFEPOOL_TASKS")
	require.NoError(t, err)
	info, err := st.Info(context.Background())
	require.NoError(t, err)
	return info
}

// publishRaw puts bytes on the work queue as a pool would.
func publishRaw(t *testing.T, url, pool string, data []byte) {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.Publish(context.Background(), "safepool.tasks."+pool, data)
	require.NoError(t, err)
}

func TestClaimOfAGonePoolIsRefused(t *testing.T) {
	srv := startServer(t, cluster.ServerConfig{})
	openPool(t, srv.ClientURL(), nil) // another pool; it sets up the stream
	a := startAgent(t, srv.ClientURL(), cluster.Options{})
	publishRaw(t, srv.ClientURL(), "gone", remote.MarshalChunk(chunk("gone", 7, 1)))

	got := nextChunk(t, a)
	require.Equal(t, "gone", got.Spec.Pool)
	ok, err := a.t.Claim(context.Background(), &remote.Claim{Pool: "gone", Chunk: 7, Agent: agentOf(a)})
	require.ErrorIs(t, err, nats.ErrNoResponders)
	require.False(t, ok, "no pool answers, so the chunk is not the agent's")
	// Nobody listening may be a pool moving to another server: the chunk
	// comes back a second later (a pool silent for 30 deliveries is gone).
	again := nextChunk(t, a)
	require.Equal(t, uint64(7), again.ID)
}

func TestMalformedMessagesAreSkipped(t *testing.T) {
	srv := startServer(t, cluster.ServerConfig{})
	openPool(t, srv.ClientURL(), nil) // sets up the stream
	var logged = make(chan string, 10)
	got := swapRunAgent(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- cluster.RunAgent(ctx, srv.ClientURL(), cluster.Options{},
			cluster.AgentConfig{Logf: func(f string, a ...any) { logged <- fmt.Sprintf(f, a...) }})
	}()
	a := <-got
	defer func() { cancel(); require.NoError(t, <-done) }()

	publishRaw(t, srv.ClientURL(), "p", []byte("not a chunk"))
	publishRaw(t, srv.ClientURL(), "p", remote.MarshalChunk(chunk("p", 9, 1)))
	require.Equal(t, uint64(9), nextChunk(t, a).ID)
	for msg := range logged {
		if strings.Contains(msg, "not a chunk") {
			break
		}
	}
}

func TestMessagesReachThePoolInOrder(t *testing.T) {
	srv := startServer(t, cluster.ServerConfig{})
	c, p := openPool(t, srv.ClientURL(), nil)
	a := startAgent(t, srv.ClientURL(), cluster.Options{})
	ag := agentOf(a)

	// Control messages reach every agent.
	require.NoError(t, c.Prepare(&remote.Spec{Pool: c.Pool(), Name: "tasks.wasm"}))
	require.Equal(t, "prepare "+c.Pool()+" tasks.wasm", a.h.next(t))
	require.NoError(t, c.Stop(&remote.Stop{Pool: c.Pool(), Chunks: []uint64{4, 5}}))
	require.Equal(t, fmt.Sprintf("stop %s false [4 5]", c.Pool()), a.h.next(t))

	require.NoError(t, a.t.SendReady(&remote.Ready{Pool: c.Pool(), Agent: ag}))
	for i := range 50 {
		require.NoError(t, a.t.SendResults(c.Pool(), remote.MarshalResults(&remote.Results{Pool: c.Pool(), Agent: ag,
			Results: []remote.Result{{ID: uint64(i), Output: []byte("out")}}})))
	}
	// A heartbeat lists only what the agent holds of the pool it goes to.
	require.NoError(t, a.t.SendHeartbeat(&remote.Heartbeat{Agent: ag, Seq: 1, Holding: []remote.Holding{
		{Pool: "other", Chunks: []uint64{1}}, {Pool: c.Pool(), Chunks: []uint64{2}, Running: []uint64{3}},
	}}))
	require.NoError(t, a.t.SendRelease(&remote.Release{Pool: c.Pool(), Agent: ag, IDs: []uint64{8}, Why: "stopping"}))

	require.Equal(t, "ready "+a.instance+" ", p.next(t))
	for i := range 50 {
		require.Equal(t, fmt.Sprintf("results %d out", i), p.next(t))
	}
	require.Equal(t, fmt.Sprintf("hb 1 [{%s [2] [3]}]", c.Pool()), p.next(t))
	require.Equal(t, "release [8] stopping", p.next(t))

	// Close tells the agents the pool is gone.
	require.NoError(t, c.Close())
	require.Equal(t, fmt.Sprintf("stop %s true []", c.Pool()), a.h.next(t))
}

func TestMessagesLargerThanMaxPayloadAreRefused(t *testing.T) {
	srv := startServer(t, cluster.ServerConfig{})
	c, _ := openPool(t, srv.ClientURL(), nil)
	a := startAgent(t, srv.ClientURL(), cluster.Options{})
	require.Greater(t, c.MaxPayload(), 900<<10)
	require.Less(t, c.MaxPayload(), 1<<20)
	require.Equal(t, c.MaxPayload(), a.t.MaxPayload())

	big := chunk(c.Pool(), 1, 1)
	big.Tasks[0].Input = make([]byte, c.MaxPayload())
	require.ErrorIs(t, send(context.Background(), c, big), cluster.ErrTooLarge)
	err := a.t.SendResults(c.Pool(), remote.MarshalResults(&remote.Results{Pool: c.Pool(), Agent: agentOf(a),
		Results: []remote.Result{{ID: 1, Output: make([]byte, c.MaxPayload())}}}))
	require.ErrorIs(t, err, cluster.ErrTooLarge)

	// Just under the limit goes through.
	fits := chunk(c.Pool(), 2, 1)
	fits.Tasks[0].Input = make([]byte, c.MaxPayload()-remote.ChunkOverhead-remote.TaskOverhead)
	require.NoError(t, send(context.Background(), c, fits))
	require.Len(t, tasks(nextChunk(t, a))[0].Input, len(fits.Tasks[0].Input))
}

func TestObjectsRoundTripAndDamageIsRefused(t *testing.T) {
	srv := startServer(t, cluster.ServerConfig{})
	c, _ := openPool(t, srv.ClientURL(), nil)
	a := startAgent(t, srv.ClientURL(), cluster.Options{})
	ctx := context.Background()

	module := []byte("\x00asm\x01\x00\x00\x00 a module of some size")
	sum := sha256.Sum256(module)
	key := hex.EncodeToString(sum[:])
	require.NoError(t, c.PutObject(ctx, key, module))
	require.NoError(t, c.PutObject(ctx, key, module), "a module stored already is not stored again")
	got, err := a.t.Object(ctx, key)
	require.NoError(t, err)
	require.Equal(t, module, got)

	// A large output goes the other way.
	out := make([]byte, 3<<20)
	out[len(out)-1] = 7
	require.NoError(t, a.t.PutObject(ctx, "out-1", out))
	back, err := c.GetObject(ctx, "out-1")
	require.NoError(t, err)
	require.Equal(t, out, back)
	c.DeleteObject("out-1")
	_, err = c.GetObject(ctx, "out-1")
	require.ErrorIs(t, err, jetstream.ErrObjectNotFound)

	// Other bytes under the module's key.
	require.NoError(t, c.PutObject(ctx, key, []byte("something else entirely, of another size")))
	_, err = a.t.Object(ctx, key)
	require.ErrorIs(t, err, cluster.ErrDamaged)
	other := sha256.Sum256([]byte("something else entirely, of another size"))
	require.ErrorContains(t, err, fmt.Sprintf("module object %s is damaged: its SHA-256 is %s", key, hex.EncodeToString(other[:])))

	_, err = a.t.Object(ctx, "missing")
	require.ErrorIs(t, err, jetstream.ErrObjectNotFound)
}

func TestOptionsOfAnotherTypeAreRefused(t *testing.T) {
	srv := startServer(t, cluster.ServerConfig{})
	_, err := remote.Open(context.Background(), remote.OpenConfig{Target: srv.ClientURL(), Options: 42}, newFakePool())
	require.ErrorIs(t, err, cluster.ErrOptions)
	require.ErrorContains(t, err, "not int")

	c, _ := openPool(t, srv.ClientURL(), &cluster.Options{Name: "mine"})
	require.NotEmpty(t, c.Pool())
}

func TestUnknownTargetIsRefused(t *testing.T) {
	_, err := remote.Open(context.Background(), remote.OpenConfig{Target: "embedded-please"}, newFakePool())
	require.ErrorContains(t, err, `use "embedded" or server URLs such as nats://host1:4222,host2:4222`)
}

// helperAgentConn is a child process that connects as an agent and waits
// to be killed.
func helperAgentConn(name string) {
	nc, err := nats.Connect(os.Getenv("SAFEPOOL_TEST_URL"), nats.Name(name))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if err := nc.Flush(); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("connected")
	select {}
}

func TestAgentKilledIsLostWithinTheAdvisory(t *testing.T) {
	srv := startServer(t, cluster.ServerConfig{})
	_, p := openPool(t, srv.ClientURL(), nil)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SAFEPOOL_TEST_AGENT_CONN=safepool-agent/victim", "SAFEPOOL_TEST_URL="+srv.ClientURL())
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "connected\n", line)

	require.NoError(t, syscall.Kill(cmd.Process.Pid, syscall.SIGKILL))
	_ = cmd.Wait()
	for {
		e := p.next(t)
		if strings.HasPrefix(e, "lost ") {
			require.Equal(t, "lost victim disconnected: client closed", e)
			return
		}
	}
}

func TestAgentLostOnAbruptClose(t *testing.T) {
	srv := startServer(t, cluster.ServerConfig{})
	_, p := openPool(t, srv.ClientURL(), nil)
	a := startAgent(t, srv.ClientURL(), cluster.Options{})
	a.stop()
	require.NoError(t, <-a.done)
	a.done <- nil // for the cleanup
	e := p.next(t)
	for !strings.HasPrefix(e, "lost ") {
		e = p.next(t)
	}
	require.Equal(t, "lost "+a.instance+" disconnected: client closed", e)
}

func TestReconnectIsReported(t *testing.T) {
	srv := startServer(t, cluster.ServerConfig{})
	url := srv.ClientURL()
	_, p := openPool(t, url, nil)
	srv.Shutdown()
	again := startServer(t, cluster.ServerConfig{Listen: strings.TrimPrefix(url, "nats://")})
	require.Equal(t, url, again.ClientURL())
	e := p.next(t)
	for e != "reconnected" {
		e = p.next(t)
	}
}

func TestServersWithoutAdvisoriesAreNamedOnce(t *testing.T) {
	// A server that does not share disconnect advisories with its
	// clients: a plain one.
	srv := startPlainServer(t)
	logged := make(chan string, 10)
	opts := cluster.Options{Logf: func(f string, a ...any) { logged <- fmt.Sprintf(f, a...) }}
	restore := cluster.SetProbeWait(200 * time.Millisecond)
	defer restore()
	openPool(t, srv, opts)
	select {
	case msg := <-logged:
		require.Contains(t, msg, "do not share client disconnect advisories")
	case <-time.After(30 * time.Second):
		t.Fatal("no warning")
	}
}

func TestAdvisoriesOfServersStartedHereAreSeen(t *testing.T) {
	srv := startServer(t, cluster.ServerConfig{})
	logged := make(chan string, 10)
	opts := cluster.Options{Logf: func(f string, a ...any) { logged <- fmt.Sprintf(f, a...) }}
	c, _ := openPool(t, srv.ClientURL(), opts)
	require.True(t, cluster.WaitProbe(c), "the probe's own disconnect advisory came")
	require.Empty(t, logged)
}

func TestSendAfterTheServerIsGoneFails(t *testing.T) {
	srv := startServer(t, cluster.ServerConfig{})
	c, _ := openPool(t, srv.ClientURL(), nil)
	srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	require.Error(t, send(ctx, c, chunk(c.Pool(), 1, 1)))
}

// A claim the pool does not answer in time (a pool busy, a network slow)
// is not dropped: the chunk goes back to the work queue and comes again.
func TestUnansweredClaimReturnsTheChunk(t *testing.T) {
	srv := startServer(t, cluster.ServerConfig{})
	openPool(t, srv.ClientURL(), nil) // another pool; it sets up the stream
	a := startAgent(t, srv.ClientURL(), cluster.Options{})
	// Something listens for the pool's claims but never answers.
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	_, err = nc.SubscribeSync("safepool.to.busy.claim")
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	publishRaw(t, srv.ClientURL(), "busy", remote.MarshalChunk(chunk("busy", 9, 1)))

	got := nextChunk(t, a)
	require.Equal(t, uint64(9), got.ID)
	ok, err := a.t.Claim(context.Background(), &remote.Claim{Pool: "busy", Chunk: 9, Agent: agentOf(a)})
	require.Error(t, err)
	require.False(t, ok)
	again := nextChunk(t, a)
	require.Equal(t, uint64(9), again.ID, "the chunk came back")
	require.Equal(t, "busy", again.Spec.Pool)
}
