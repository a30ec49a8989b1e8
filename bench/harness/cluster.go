package harness

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"syscall"
	"time"

	_ "github.com/safepool/safepool/cluster" // the NATS transport of Config.Cluster
	"github.com/safepool/safepool/pool"
)

// ScenarioCluster measures the pool on a cluster beside the local pool.
const ScenarioCluster = "cluster"

// Cluster systems, as the report shows them.
const (
	ClusterLocal    = "local pool"
	ClusterEmbedded = "cluster \"embedded\""
	ClusterThree    = "cluster, 3 agents"
)

// ClusterResults is what the cluster scenario measured.
type ClusterResults struct {
	Throughput []Throughput
	Latency    []Latency
	// Recovery is the time from a SIGKILL to the retried task's start.
	Recovery []ClusterRecovery
	// Stream is the pool's process's peak RSS while Imap streams on
	// "embedded" (coordinator, server and agent in one process).
	Stream *ClusterStream
	// CoordinatorStream is the same with the server and three agents in
	// processes of their own: the pool's process is the coordinator alone.
	CoordinatorStream *ClusterStream
	Notes             []string
}

// ClusterRecovery is one kind of kill and how long retries took to start.
type ClusterRecovery struct {
	Kill    string // what was killed, and how the loss was noticed
	Samples []time.Duration
	P50     time.Duration
	Max     time.Duration
	// For an agent's kill: from the kill to the pool presuming the agent
	// dead (Detect) and to the map's last result (Done), and whether
	// every map ended with all its results ok and in order.
	Detect, Done         []time.Duration
	DetectP50, DetectMax time.Duration
	DoneP50, DoneMax     time.Duration
	Correct              bool
}

// ClusterStream is the coordinator's memory while Imap streams.
type ClusterStream struct {
	System  string
	Items   int
	Elapsed time.Duration
	// StartKiB and PeakKiB are the coordinator process's VmRSS after its
	// start and its VmHWM at the end.
	StartKiB, PeakKiB int64
	Correct           bool
}

// clusterPool starts a pool of opts.Workers workers on guest, local when
// target is "" and on the cluster target otherwise.
func (b *bench) clusterPool(guest, target string) (*pool.Pool, error) {
	return b.newPool(guest, func(c *pool.Config) { c.Cluster = target })
}

// clusterSystem is a system of the cluster section: a pool's Cluster.
type clusterSystem struct{ name, target, note, profile string }

// clusterThroughput runs square over ThroughputN inputs on the local pool,
// on "embedded" and on the agents' cluster (when ac is set), taking
// turns, and keeps each system's best run.
func (b *bench) clusterThroughput(ctx context.Context, cr *ClusterResults, ac *agentCluster) error {
	n := b.opts.ThroughputN
	inputs := decimals(n)
	note := "Map of all inputs, Workers " + fmt.Sprint(b.opts.Workers)
	systems := []clusterSystem{{ClusterLocal, "", note, "local"}, {ClusterEmbedded, "embedded", note, "embedded"}}
	if ac != nil {
		systems = append(systems, clusterSystem{ClusterThree, ac.url,
			fmt.Sprintf("Map of all inputs; 3 agent processes ('safepool serve') of %d worker(s) each, one beside the server", ac.workers), "agents"})
	}
	for _, g := range b.opts.Guests {
		rows := make([]Throughput, len(systems))
		pools := make([]*pool.Pool, len(systems))
		for i, s := range systems {
			p, err := b.clusterPool(g, s.target)
			if err != nil {
				return err
			}
			defer closePool(p)
			if _, err := p.Map(ctx, "square", inputs[:min(n, 10_000)]); err != nil {
				return fmt.Errorf("%s %s: warm up: %w", s.name, g, err)
			}
			pools[i] = p
			rows[i] = Throughput{System: s.name, Guest: g, Tasks: n, Note: s.note}
		}
		for range b.opts.Rounds {
			for i, s := range systems {
				var rs []pool.Result
				stop, err := b.startProfile(fmt.Sprintf("cluster-%s-%s.pprof", g, s.profile))
				if err != nil {
					return err
				}
				t, err := timed(func() error {
					var err error
					rs, err = pools[i].Map(ctx, "square", inputs)
					return err
				})
				stop()
				if err != nil {
					return fmt.Errorf("%s %s: %w", s.name, g, err)
				}
				if err := checkResults(rs, n); err != nil {
					return fmt.Errorf("%s %s: %w", s.name, g, err)
				}
				rs = nil
				r := &rows[i]
				r.Runs = append(r.Runs, t.wall)
				r.Correct = true
				if r.Elapsed == 0 || t.wall < r.Elapsed {
					r.Elapsed, r.HostCPU, r.WorkerCPU = t.wall, t.hostCPU, t.workerCPU
				}
				b.opts.logf("cluster: %s %s: %.2f µs/task, host CPU %.2f µs/task", s.name, g, perTask(t.wall, n)/1e3, perTask(t.hostCPU, n)/1e3)
			}
		}
		cr.Throughput = append(cr.Throughput, rows...)
	}
	return nil
}

// clusterScenario is the cluster section: the pool on a cluster beside the
// local pool.
func (b *bench) clusterScenario(ctx context.Context) error {
	cr := &ClusterResults{Notes: []string{
		"The worker-kill row kills a worker of the in-process agent; the retry runs on the same agent.",
		"\"cluster, 3 agents\" is a 'safepool serve --listen' process (a server with agent-1 beside it) and two 'safepool serve --nats' processes (agent-2, agent-3), all on this machine; the pool's process is the coordinator alone. Each agent kill SIGKILLs agent-2 or agent-3, whichever starts a task of the map first, and starts it again after the map.",
		"An agent's loss is noticed through the servers' disconnect advisory when they reach the pool, else from its missing heartbeats; each kill is counted in the row of the way the pool said it noticed. The heartbeat row comes from a second cluster: a plain NATS server in the harness's process, which keeps the advisories in its system account, and three 'safepool serve --nats' agents.",
		"A chunk the killed agent had fetched from the stream (it keeps up to 8 ahead) and not yet claimed is sent again by the pool as soon as it presumes the agent dead, instead of waiting for the stream's ack wait of 5 s.",
	}}
	b.res.Cluster = cr
	ac, err := b.startAgentCluster(ctx)
	if err != nil {
		cr.Notes = append(cr.Notes, "The agents' cluster could not start, so its rows are not measured: "+err.Error())
		b.opts.logf("cluster: agents' cluster: %v", err)
	} else {
		defer ac.close()
		cr.Notes = append(cr.Notes, fmt.Sprintf("The 3 agents run %d worker(s) each, %d in all, beside the local pool's %d.", ac.workers, 3*ac.workers, b.opts.Workers))
	}
	steps := []func(context.Context, *ClusterResults) error{
		func(ctx context.Context, cr *ClusterResults) error { return b.clusterThroughput(ctx, cr, ac) },
		b.clusterLatency, b.clusterWorkerKill,
		func(ctx context.Context, cr *ClusterResults) error {
			s, err := b.clusterStream(ctx, ClusterEmbedded, "embedded", b.opts.StreamN)
			cr.Stream = s
			return err
		},
	}
	if ac != nil {
		steps = append(steps,
			func(ctx context.Context, cr *ClusterResults) error { return b.clusterAgentKill(ctx, cr, ac) },
			func(ctx context.Context, cr *ClusterResults) error {
				s, err := b.clusterStream(ctx, ClusterThree, ac.url, b.opts.StreamN)
				cr.CoordinatorStream = s
				return err
			},
			// The same kills where the servers keep their advisories
			// from the pool: it learns of a lost agent from its
			// missing heartbeats.
			func(ctx context.Context, cr *ClusterResults) error {
				pc, err := b.startPlainAgentCluster(ac.exe)
				if err != nil {
					cr.Notes = append(cr.Notes, "The cluster of a plain NATS server could not start, so the heartbeat row is not measured: "+err.Error())
					return nil
				}
				defer pc.close()
				return b.clusterAgentKill(ctx, cr, pc)
			})
	}
	for _, step := range steps {
		if err := step(ctx, cr); err != nil {
			return err
		}
		runtime.GC()
	}
	return nil
}

// clusterLatency times Apply of square(7) on the local pool and on
// "embedded", taking turns in LatencyRounds rounds.
func (b *bench) clusterLatency(ctx context.Context, cr *ClusterResults) error {
	g := WATGuest
	systems := []struct{ name, target string }{{ClusterLocal, ""}, {ClusterEmbedded, "embedded"}}
	samples := make([][]time.Duration, len(systems))
	pools := make([]*pool.Pool, len(systems))
	for i, s := range systems {
		p, err := b.clusterPool(g, s.target)
		if err != nil {
			return err
		}
		defer closePool(p)
		for range max(b.opts.LatencySamples/10, 10) { // untimed
			if _, err := p.Apply(ctx, "square", []byte("7")); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
		}
		pools[i] = p
	}
	per := max(b.opts.LatencySamples/b.opts.LatencyRounds, 1)
	for range b.opts.LatencyRounds {
		for i, s := range systems {
			for range per {
				start := time.Now()
				r, err := pools[i].Apply(ctx, "square", []byte("7"))
				d := time.Since(start)
				if err != nil || r.Status != pool.StatusOK || string(r.Output) != "49" {
					return fmt.Errorf("%s: Apply: %v %s %s", s.name, err, r.Status, r.Error)
				}
				samples[i] = append(samples[i], d)
			}
		}
	}
	for i, s := range systems {
		sorted := slices.Clone(samples[i])
		slices.Sort(sorted)
		var sum time.Duration
		for _, d := range sorted {
			sum += d
		}
		cr.Latency = append(cr.Latency, Latency{System: s.name, Guest: g, Samples: len(sorted),
			P50: percentile(sorted, 50), P99: percentile(sorted, 99), Max: sorted[len(sorted)-1], Mean: sum / time.Duration(len(sorted))})
		b.opts.logf("cluster: %s Apply p50 %s p99 %s", s.name, percentile(sorted, 50), percentile(sorted, 99))
	}
	return nil
}

// clusterWorkerKill SIGKILLs the worker of "embedded"'s agent that runs a
// slow task, Kills times, and times each kill to the retried attempt's
// start event.
func (b *bench) clusterWorkerKill(ctx context.Context, cr *ClusterResults) error {
	type start struct {
		index, attempt, pid int
		at                  time.Time
	}
	starts := make(chan start, 64)
	p, err := b.newPool(GoGuest, func(c *pool.Config) {
		c.Cluster = "embedded"
		c.KillPolicy = pool.Retry
		c.OnEvent = func(e pool.Event) {
			if e.Kind == pool.EventTaskStart {
				select {
				case starts <- start{e.Index, e.Attempt, e.WorkerPID, time.Now()}:
				default:
				}
			}
		}
	})
	if err != nil {
		return err
	}
	defer closePool(p)
	rec := ClusterRecovery{Kill: "a worker of \"embedded\"'s agent (SIGKILL) → the task's retry starts"}
	for k := range b.opts.Kills {
		h, err := p.MapAsync(ctx, "sleep", [][]byte{[]byte("200")})
		if err != nil {
			return err
		}
		var first start
		select {
		case first = <-starts:
		case <-time.After(time.Minute):
			return fmt.Errorf("worker kill %d: the task did not start", k)
		}
		killed := time.Now()
		if err := syscall.Kill(first.pid, syscall.SIGKILL); err != nil {
			return fmt.Errorf("worker kill %d: %w", k, err)
		}
		select {
		case s := <-starts:
			if s.attempt != first.attempt+1 {
				return fmt.Errorf("worker kill %d: attempt %d started after the kill of attempt %d", k, s.attempt, first.attempt)
			}
			rec.Samples = append(rec.Samples, s.at.Sub(killed))
		case <-time.After(time.Minute):
			return fmt.Errorf("worker kill %d: the retry did not start", k)
		}
		rs, err := h.Wait(ctx)
		if err != nil || rs[0].Status != pool.StatusOK {
			return fmt.Errorf("worker kill %d: %v %v", k, err, rs)
		}
	}
	cr.Recovery = append(cr.Recovery, rec.summarize())
	b.opts.logf("cluster: worker kill → retry p50 %s max %s", cr.Recovery[len(cr.Recovery)-1].P50, cr.Recovery[len(cr.Recovery)-1].Max)
	return nil
}

func (r ClusterRecovery) summarize() ClusterRecovery {
	p50max := func(d []time.Duration) (time.Duration, time.Duration) {
		if len(d) == 0 {
			return 0, 0
		}
		return median(d), slices.Max(d)
	}
	r.P50, r.Max = p50max(r.Samples)
	r.DetectP50, r.DetectMax = p50max(r.Detect)
	r.DoneP50, r.DoneMax = p50max(r.Done)
	return r
}

// clusterStream streams n items through Imap on target and samples this
// process's VmRSS: on "embedded", the coordinator, the server and the
// agent all live in it; on the agents' cluster, only the coordinator.
func (b *bench) clusterStream(ctx context.Context, system, target string, n int) (*ClusterStream, error) {
	p, err := b.clusterPool(WATGuest, target)
	if err != nil {
		return nil, err
	}
	defer closePool(p)
	if _, err := p.Map(ctx, "square", decimals(1000)); err != nil {
		return nil, err
	}
	runtime.GC()
	debug.FreeOSMemory()
	startKiB, err := rssKiB("self")
	if err != nil {
		return nil, err
	}
	inputs := func(yield func([]byte) bool) {
		for i := range n { // the pool keeps each input until its result
			if !yield(strconv.AppendInt(nil, int64(i), 10)) {
				return
			}
		}
	}
	rss := sampleRSS(20 * time.Millisecond)
	start := time.Now()
	i, correct := 0, true
	var want []byte
	for r, err := range p.Imap(ctx, "square", inputs, b.opts.StreamWindow) {
		if err != nil {
			rss.finish()
			return nil, err
		}
		want = strconv.AppendInt(want[:0], int64(i)*int64(i), 10)
		if r.Status != pool.StatusOK || string(r.Output) != string(want) {
			if correct {
				b.opts.logf("cluster: Imap item %d: %s %q %s, want %q", i, r.Status, r.Output, r.Error, want)
			}
			correct = false
		}
		i++
	}
	elapsed := time.Since(start)
	peak, _ := rss.finish()
	peak = max(peak, startKiB)
	b.opts.logf("cluster: Imap of %d items on %s: RSS %d → %d KiB", i, system, startKiB, peak)
	return &ClusterStream{System: system, Items: i, Elapsed: elapsed, StartKiB: startKiB, PeakKiB: peak, Correct: correct && i == n}, nil
}
