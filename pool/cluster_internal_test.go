package pool

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/remote"
	"github.com/safepool/safepool/internal/remote/remotetest"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/module"
)

// The cluster dispatcher's bookkeeping, under fire: fake agents (no
// worker processes: this tests the protocol, not kill handling) that die
// with and without the advisory, come back and send what they held late,
// lose result messages and send others twice. Every attempt must be
// settled once, and every task must end exactly once, with its own result.

var unitBuses = remotetest.Register("unit:")

// fakeAgent runs chunks by computing squares itself, and misbehaves at
// random.
type fakeAgent struct {
	t    *testing.T
	tr   *remotetest.Agent
	me   remote.Agent
	rng  *rand.Rand
	mu   sync.Mutex
	held map[string]map[uint64][]uint64 // pool → chunk → open attempt IDs
	// dup sends some results twice; lose drops some result messages.
	dup, lose float64
}

func (f *fakeAgent) Prepare(s *remote.Spec) {
	_ = f.tr.SendReady(&remote.Ready{Pool: s.Pool, Agent: f.me, Kind: uint8(module.KindSDK), Handlers: []string{"square"}})
	f.mu.Lock()
	if f.held[s.Pool] == nil {
		f.held[s.Pool] = map[uint64][]uint64{}
	}
	f.mu.Unlock()
}

func (f *fakeAgent) Stop(s *remote.Stop) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range s.Chunks {
		delete(f.held[s.Pool], c)
	}
}

func (f *fakeAgent) beat() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for pool, chunks := range f.held {
		h := remote.Holding{Pool: pool}
		for id, open := range chunks {
			h.Chunks = append(h.Chunks, id)
			if len(open) > 0 {
				h.Running = append(h.Running, open[0])
			}
		}
		_ = f.tr.SendHeartbeat(&remote.Heartbeat{Agent: f.me, Holding: []remote.Holding{h}})
	}
}

// run takes chunks until ctx is done.
func (f *fakeAgent) run(ctx context.Context) {
	go func() {
		for ctx.Err() == nil {
			f.beat()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	for {
		c, err := f.tr.Next(ctx)
		if err != nil {
			return
		}
		f.mu.Lock()
		if f.held[c.Spec.Pool] == nil {
			f.held[c.Spec.Pool] = map[uint64][]uint64{}
		}
		open := make([]uint64, c.Len())
		var tasks []remote.Task
		for i, t := range c.All() {
			open[i] = t.ID
			tasks = append(tasks, *t)
		}
		f.held[c.Spec.Pool][c.ID] = open
		f.mu.Unlock()
		ok, err := f.tr.Claim(ctx, &remote.Claim{Pool: c.Spec.Pool, Chunk: c.ID, Agent: f.me})
		if err != nil || !ok {
			f.mu.Lock()
			delete(f.held[c.Spec.Pool], c.ID)
			f.mu.Unlock()
			continue
		}
		for _, t := range tasks {
			time.Sleep(500 * time.Microsecond)
			n, _ := strconv.ParseInt(string(t.Input), 10, 64)
			rs := &remote.Results{Pool: c.Spec.Pool, Agent: f.me, Results: []remote.Result{{ID: t.ID, Status: uint8(StatusOK), Output: []byte(strconv.FormatInt(n*n, 10))}}, Beat: true}
			f.mu.Lock()
			// As a real agent's, the results say what runs next.
			for _, open := range f.held[c.Spec.Pool] {
				if len(open) > 0 && open[0] != t.ID {
					rs.Running = append(rs.Running, open[0])
				} else if len(open) > 1 {
					rs.Running = append(rs.Running, open[1])
				}
			}
			lose := f.rng.Float64() < f.lose
			dup := f.rng.Float64() < f.dup
			f.mu.Unlock()
			if !lose {
				_ = f.tr.SendResults(rs.Pool, remote.MarshalResults(rs))
				if dup {
					_ = f.tr.SendResults(rs.Pool, remote.MarshalResults(rs))
				}
			}
			f.mu.Lock()
			if open := f.held[c.Spec.Pool][c.ID]; len(open) > 0 {
				f.held[c.Spec.Pool][c.ID] = open[1:]
				if len(open) == 1 {
					delete(f.held[c.Spec.Pool], c.ID)
				}
			}
			f.mu.Unlock()
		}
	}
}

func TestClusterDispatcherSettlesEachAttemptOnce(t *testing.T) {
	old := clusterHeartbeatTimeout
	clusterHeartbeatTimeout = 150 * time.Millisecond
	defer func() { clusterHeartbeatTimeout = old }()

	for _, policy := range []Policy{Skip, Retry} {
		t.Run(policy.String(), func(t *testing.T) {
			bus, target := unitBuses.New(strings.ReplaceAll(t.Name(), "/", "_"))
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer func() { cancel(); bus.Close(); wg.Wait() }()

			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 1))
			start := func(name string) *fakeAgent {
				tr := bus.NewAgent(name)
				f := &fakeAgent{t: t, tr: tr, rng: rand.New(rand.NewPCG(rng.Uint64(), 2)), held: map[string]map[uint64][]uint64{},
					me:  remote.Agent{Name: name, Host: "h", Instance: name + "-" + strconv.FormatUint(rng.Uint64(), 16), Workers: 2},
					dup: 0.05, lose: 0.02}
				require.NoError(t, tr.Subscribe(f))
				actx, acancel := context.WithCancel(ctx)
				wg.Add(1)
				go func() { defer wg.Done(); f.run(actx) }()
				_ = acancel
				return f
			}
			agents := []*fakeAgent{start("a0"), start("a1"), start("a2")}

			wasm, err := testguest.Build("wchaos")
			require.NoError(t, err)
			p, err := New(ctx, Config{Module: wasm, Cluster: target, KillPolicy: policy, BatchSize: 8,
				Retry: RetryPolicy{MaxAttempts: 50, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}})
			require.NoError(t, err)
			defer p.Terminate()
			c := p.disp.(*cluster)
			var smu sync.Mutex
			settled := map[uint64]int{}
			sink := c.sink
			c.sink = func(o *outcome) {
				smu.Lock()
				settled[o.job.id]++
				n := settled[o.job.id]
				smu.Unlock()
				require.Equal(t, 1, n, "attempt %d settled twice", o.job.id)
				sink(o)
			}

			// Chaos: cut an agent off (with or without the advisory,
			// holding what it sends for later or not), then heal it.
			chaosDone := make(chan struct{})
			cuts := 0
			var chaos sync.WaitGroup
			chaos.Add(1)
			go func() {
				defer chaos.Done()
				for {
					select {
					case <-chaosDone:
						return
					case <-time.After(time.Duration(30+rng.IntN(60)) * time.Millisecond):
					}
					f := agents[rng.IntN(len(agents))]
					cuts++
					f.tr.Cut(rng.IntN(2) == 0, rng.IntN(2) == 0)
					time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
					f.tr.Heal()
				}
			}()

			const n = 3000
			in := make([][]byte, n)
			for i := range in {
				in[i] = []byte(strconv.Itoa(i))
			}
			mctx, mcancel := context.WithTimeout(ctx, 60*time.Second)
			rs, err := p.Map(mctx, "square", in)
			mcancel()
			if err != nil {
				c.mu.Lock()
				for _, ch := range c.chunks {
					h := "-"
					if ch.holder != nil {
						h = ch.holder.info.Name + " lost=" + strconv.FormatBool(ch.holder.lost)
					}
					t.Logf("chunk %d base %d left %d holder %s missed %d", ch.id, ch.base, ch.left, h, ch.missed)
				}
				c.mu.Unlock()
				t.Logf("queue empty %v", c.q.empty())
			}
			close(chaosDone)
			chaos.Wait()
			require.NoError(t, err)
			require.Len(t, rs, n)
			killed := 0
			for i, r := range rs {
				require.Equal(t, i, r.Index)
				switch r.Status {
				case StatusOK:
					require.Equal(t, strconv.Itoa(i*i), string(r.Output), "task %d", i)
				case StatusKilled:
					require.Equal(t, Skip, policy, "task %d killed under retry: %s", i, r.Error)
					require.Contains(t, r.Error, "lost")
					killed++
				default:
					t.Fatalf("task %d: %s %s", i, r.Status, r.Error)
				}
			}
			require.Equal(t, killed, len(p.KilledTasks()))
			smu.Lock()
			t.Logf("%d attempts settled, %d tasks killed, %d agents cut off", len(settled), killed, cuts)
			require.Greater(t, cuts, 3, "the map ended before the chaos began")
			smu.Unlock()
		})
	}
}

// An agent's results say what its workers run as they leave (Beat), and
// the pool charges exactly that when the agent is lost; what an agent
// sends once it is presumed dead, while its chunks are being given back,
// is not heard: neither its results nor what it says it runs.
func TestClusterResultsSayWhatRunsAndALostAgentIsNotHeard(t *testing.T) {
	var settled []outcome
	c := newCluster(Config{}, remote.Spec{}, newQueue(), func(o *outcome) { settled = append(settled, *o) }, func(Event) {}, func(error) {})
	c.id = "p"
	c.live.Store(true)
	r := &run{done: make(chan struct{})}
	jobs := make([]*job, 4)
	for i := range jobs {
		jobs[i] = &job{run: r, index: i}
	}
	me := remote.Agent{Name: "a", Host: "h", Instance: "i", Workers: 2}
	c.mu.Lock()
	ag := c.agentLocked(me)
	ch := &rchunk{id: 1, base: 1, run: r, jobs: jobs, left: len(jobs), holder: ag}
	c.chunks, c.byID[1] = []*rchunk{ch}, ch
	c.mu.Unlock()
	ok := func(id uint64) remote.Result {
		return remote.Result{ID: id, Status: uint8(StatusOK), Output: []byte("x")}
	}

	// Task 0 ends; its workers run tasks 2 and 3 (attempts 3 and 4).
	c.Results(&remote.Results{Pool: "p", Agent: me, Results: []remote.Result{ok(1)}, Beat: true, Running: []uint64{3, 4}})
	require.Len(t, settled, 1)
	require.Equal(t, 0, settled[0].job.index)
	// Results without a beat leave the record of what runs as it was.
	c.Results(&remote.Results{Pool: "p", Agent: me})

	// Presumed dead, its chunks not given back yet: task 1's result and
	// its word that nothing runs are dropped.
	c.mu.Lock()
	ag.lost = true
	c.mu.Unlock()
	c.Results(&remote.Results{Pool: "p", Agent: me, Results: []remote.Result{ok(2)}, Beat: true})
	require.Len(t, settled, 1, "a result from an agent presumed dead was taken")
	c.mu.Lock()
	require.Equal(t, map[uint64]bool{3: true, 4: true}, ag.running)
	ag.lost = false
	c.mu.Unlock()

	// Lost: tasks 2 and 3 are charged, task 1 goes back to the queue.
	c.AgentLost("i", "cut off")
	require.Len(t, settled, 3)
	for _, o := range settled[1:] {
		require.Contains(t, []int{2, 3}, o.job.index)
		require.Equal(t, StatusKilled, o.res.Status)
		require.NotNil(t, o.death)
	}
	back := c.q.pop(10, 1, nil)
	require.Len(t, back, 1)
	require.Equal(t, 1, back[0].index)
}
