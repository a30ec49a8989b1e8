package cluster_test

import (
	"context"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/safepool/safepool/cluster"
	"github.com/safepool/safepool/internal/enginetest"
	"github.com/safepool/safepool/internal/remote"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/pool"
)

// BenchmarkHeartbeatGap measures how late an agent's heartbeats reach its
// pool when the machine is loaded: an agent process (this test binary in
// agent mode, built with -race when the benchmark is) runs maps for a pool
// while two processes spin, one per core of this machine. It reports the
// gaps between heartbeats as the pool's process sees them: their p50, p99
// and largest, and how many exceeded half of the time after which a pool
// presumes a silent agent dead (800 ms). A measurement, not a check: run it
// with -race to see the worst the fault tests meet.
//
//	go test -race -run '^$' -bench HeartbeatGap -benchtime 3x ./cluster/
func BenchmarkHeartbeatGap(b *testing.B) {
	for _, w := range []struct {
		name   string
		fn     string
		inputs [][]byte
	}{
		// Results stream back: the agent beats after each batch, and
		// its goroutines compete with the spinners for the cores.
		{"results", "square", enginetest.Ints(20_000)},
		// Tasks of 250 ms: only the periodic beats come.
		{"long tasks", "sleep", sleeps(8, 250)},
	} {
		b.Run(w.name, func(b *testing.B) {
			srv, err := cluster.StartServer(cluster.ServerConfig{})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Shutdown()
			stop := startBenchAgent(b, srv.ClientURL())
			defer stop()
			gaps := watchBeats(b, srv.ClientURL())
			p, err := pool.New(context.Background(), pool.Config{Module: testguest.Path(b, "tasks"), Workers: 2,
				CacheDir: enginetest.CacheDir(b), Cluster: srv.ClientURL()})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			defer spin(b, 2)()
			gaps.start()
			for b.Loop() {
				if _, err := p.Map(context.Background(), w.fn, w.inputs); err != nil {
					b.Fatal(err)
				}
			}
			g := gaps.stop()
			if len(g) == 0 {
				b.Fatal("no heartbeat came")
			}
			slices.Sort(g)
			ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
			late := 0
			for _, d := range g {
				if d > 400*time.Millisecond {
					late++
				}
			}
			b.ReportMetric(ms(g[len(g)/2]), "p50-gap-ms")
			b.ReportMetric(ms(g[len(g)*99/100]), "p99-gap-ms")
			b.ReportMetric(ms(g[len(g)-1]), "max-gap-ms")
			b.ReportMetric(float64(late), "gaps>400ms")
		})
	}
}

// startBenchAgent starts an agent process of two workers on urls and waits
// until it is ready; stop ends it with SIGTERM.
func startBenchAgent(b *testing.B, urls string) (stop func()) {
	cmd := agentCommand(urls, "bench", enginetest.CacheDir(b))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	up := make(chan struct{})
	go readAgentLog(stderr, up, nil)
	select {
	case <-up:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		b.Fatal("the agent was not ready within a minute")
	}
	return func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
}

// spin starts n processes that spin until stop kills them.
func spin(b *testing.B, n int) (stop func()) {
	var cmds []*exec.Cmd
	for range n {
		cmd := exec.Command("/bin/sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	return func() {
		for _, cmd := range cmds {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
}

// beatGaps records the time between heartbeats, as they reach a
// connection of this process, between start and stop.
type beatGaps struct {
	mu   sync.Mutex
	on   bool
	last map[string]time.Time // by agent instance
	gaps []time.Duration
}

func watchBeats(b *testing.B, urls string) *beatGaps {
	g := &beatGaps{last: map[string]time.Time{}}
	conn, err := nats.Connect(urls)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(conn.Close)
	_, err = conn.Subscribe("safepool.to.*.hb", func(m *nats.Msg) {
		now := time.Now()
		hb, err := remote.UnmarshalHeartbeat(m.Data)
		if err != nil {
			return
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		if !g.on {
			return
		}
		if last, ok := g.last[hb.Agent.Instance]; ok {
			g.gaps = append(g.gaps, now.Sub(last))
		}
		g.last[hb.Agent.Instance] = now
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := conn.Flush(); err != nil {
		b.Fatal(err)
	}
	return g
}

func (g *beatGaps) start() {
	g.mu.Lock()
	g.on = true
	g.mu.Unlock()
}

func (g *beatGaps) stop() []time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.on = false
	return g.gaps
}
