package cluster_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/cluster"
	"github.com/safepool/safepool/internal/enginetest"
	"github.com/safepool/safepool/pool"
)

// The cluster's chaos: maps run on the three-server cluster while a
// monkey SIGKILLs agents' workers and agents (each replaced by a new
// one) and SIGSTOPs agents for a while, at random. After every map: it
// ended (no hang), every index has exactly one result, ok with the right
// output or killed (nothing lost), one final result event per index
// (nothing doubled), and the pool's killed list grew by exactly the
// killed results.
//
// By default it runs for a few seconds in TestClusterFaults; for longer:
//
//	SAFEPOOL_SOAK_CLUSTER=5m go test -run 'TestClusterFaults/chaos' -count=1 -timeout 0 -v ./cluster/

// clusterFigures counts what a cluster chaos run did.
type clusterFigures struct {
	maps, tasks, workerKills, agentKills, stops, killedTasks, lost, doubled, hangs atomic.Int64
}

func (f *clusterFigures) String() string {
	return fmt.Sprintf("maps=%d tasks=%d kills=%d (workers=%d agents=%d) sigstops=%d killed_tasks=%d lost=%d doubled=%d hung=%d",
		f.maps.Load(), f.tasks.Load(), f.workerKills.Load()+f.agentKills.Load(), f.workerKills.Load(), f.agentKills.Load(),
		f.stops.Load(), f.killedTasks.Load(), f.lost.Load(), f.doubled.Load(), f.hangs.Load())
}

// clusterMonkey kills and stops what runs the cluster's tasks.
type clusterMonkey struct {
	c   *natsCluster
	fig *clusterFigures
	rng *rand.Rand

	mu     sync.Mutex
	pids   []int                  // workers seen starting tasks, latest last
	finals map[string]map[int]int // final result events, by func and index
	live   map[string]bool        // agents neither killed nor stopped
	stop   chan struct{}
	done   chan struct{}
}

func (m *clusterMonkey) onEvent(e pool.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch e.Kind {
	case pool.EventTaskStart:
		if m.pids = append(m.pids, e.WorkerPID); len(m.pids) > 16 {
			m.pids = m.pids[1:]
		}
	case pool.EventTaskFinal:
		if m.finals[e.Func] != nil {
			m.finals[e.Func][e.Index]++
		}
	}
}

// agentOf returns the agent whose process is pid's parent: the monkey
// kills only workers of its agents, never a process that took a dead
// worker's PID.
func (m *clusterMonkey) agentOf(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return false
	}
	ppid, _ := strconv.Atoi(f[1])
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	for _, cmd := range m.c.agents {
		if cmd.Process.Pid == ppid {
			return true
		}
	}
	return false
}

// pickAgent returns a live agent, if more than one is: one always runs.
func (m *clusterMonkey) pickAgent() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for n, ok := range m.live {
		if ok {
			names = append(names, n)
		}
	}
	if len(names) < 2 {
		return ""
	}
	return names[m.rng.IntN(len(names))]
}

func (m *clusterMonkey) run() {
	defer close(m.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-m.stop:
			return
		case <-time.After(time.Duration(300+m.rng.IntN(1200)) * time.Millisecond):
		}
		switch r := m.rng.IntN(10); {
		case r < 6: // a worker that runs a task
			m.mu.Lock()
			pid := 0
			if len(m.pids) > 0 {
				pid = m.pids[len(m.pids)-1]
			}
			m.mu.Unlock()
			if pid != 0 && m.agentOf(pid) && syscall.Kill(pid, syscall.SIGKILL) == nil {
				m.fig.workerKills.Add(1)
			}
		case r < 8: // an agent, replaced at once
			if a := m.pickAgent(); a != "" {
				m.c.signal(a, syscall.SIGKILL)
				m.fig.agentKills.Add(1)
				n := m.c.agent()
				m.mu.Lock()
				m.live[a], m.live[n] = false, true
				m.mu.Unlock()
			}
		default: // an agent stopped for 1 to 3 s
			if a := m.pickAgent(); a != "" {
				m.c.signal(a, syscall.SIGSTOP)
				m.fig.stops.Add(1)
				m.mu.Lock()
				m.live[a] = false
				m.mu.Unlock()
				d := time.Duration(1000+m.rng.IntN(2000)) * time.Millisecond
				wg.Go(func() {
					time.Sleep(d)
					m.c.signal(a, syscall.SIGCONT)
					m.mu.Lock()
					m.live[a] = true
					m.mu.Unlock()
				})
			}
		}
	}
}

// clusterChaosTime is how long the chaos runs, and whether this is a soak.
func clusterChaosTime(t *testing.T) (time.Duration, bool) {
	v := os.Getenv("SAFEPOOL_SOAK_CLUSTER")
	if v == "" {
		return 3 * time.Second, false
	}
	d, err := time.ParseDuration(v)
	require.NoError(t, err, "SAFEPOOL_SOAK_CLUSTER must be a duration such as 5m")
	return d, true
}

// runClusterChaos runs rounds of two concurrent maps under the monkey for
// d on c, whose agents are live.
func runClusterChaos(t *testing.T, c *natsCluster, live []string, d time.Duration, fig *clusterFigures) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	m := &clusterMonkey{c: c, fig: fig, rng: rand.New(rand.NewPCG(seed, 7)), live: map[string]bool{},
		stop: make(chan struct{}), done: make(chan struct{})}
	for _, a := range live {
		m.live[a] = true
	}
	p := c.pool(t, cluster.Options{Logf: func(string, ...any) {}}, func(cfg *pool.Config) {
		cfg.OnEvent = m.onEvent
		cfg.BatchSize = 4
		cfg.KilledLimit = 1 << 30
	})
	go m.run()
	maps := []struct {
		fn string
		in [][]byte
		ok func(i int) string
	}{
		{"slow_square", enginetest.Ints(60), func(i int) string { return strconv.Itoa(i * i) }},
		{"sleep", sleeps(24, 150), func(int) string { return "slept" }},
	}
	end := time.Now().Add(d)
	for time.Now().Before(end) && !t.Failed() {
		m.mu.Lock()
		m.finals = map[string]map[int]int{}
		for _, cm := range maps {
			m.finals[cm.fn] = map[int]int{}
		}
		m.mu.Unlock()
		killedBefore := len(p.KilledTasks())
		var killed atomic.Int64
		var wg sync.WaitGroup
		for _, cm := range maps {
			wg.Go(func() {
				fig.maps.Add(1)
				fig.tasks.Add(int64(len(cm.in)))
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				rs, err := p.Map(ctx, cm.fn, cm.in)
				if ctx.Err() != nil {
					fig.hangs.Add(1)
					return
				}
				if err != nil {
					t.Errorf("%s: %v", cm.fn, err)
					return
				}
				for i := range cm.in {
					switch {
					case i >= len(rs) || rs[i].Index != i:
						fig.lost.Add(1)
					case rs[i].Status == pool.StatusKilled:
						killed.Add(1)
					case rs[i].Status != pool.StatusOK || string(rs[i].Output) != cm.ok(i):
						t.Errorf("%s task %d: %s %q %s", cm.fn, i, rs[i].Status, rs[i].Output, rs[i].Error)
					}
				}
			})
		}
		wg.Wait()
		fig.killedTasks.Add(killed.Load())
		if got := len(p.KilledTasks()) - killedBefore; int64(got) != killed.Load() {
			t.Errorf("the killed list grew by %d, the maps have %d killed results", got, killed.Load())
		}
		// A task's EventTaskFinal follows the delivery that may end its
		// map: wait, boundedly, for the last ones before counting.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			m.mu.Lock()
			missing := 0
			for _, cm := range maps {
				for i := range cm.in {
					if m.finals[cm.fn][i] == 0 {
						missing++
					}
				}
			}
			m.mu.Unlock()
			if missing == 0 {
				break
			}
		}
		m.mu.Lock()
		for _, cm := range maps {
			for i := range cm.in {
				if n := m.finals[cm.fn][i]; n > 1 {
					fig.doubled.Add(int64(n - 1))
				} else if n == 0 {
					fig.lost.Add(1)
				}
			}
		}
		m.mu.Unlock()
	}
	close(m.stop)
	<-m.done
	// The pool still serves once the monkey is gone.
	rs, err := p.Map(context.Background(), "slow_square", enginetest.Ints(20))
	require.NoError(t, err)
	require.Equal(t, "361", enginetest.Squares(t, rs)[19])
}
