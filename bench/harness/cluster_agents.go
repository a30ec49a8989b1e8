package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/safepool/safepool/pool"
)

// agentCluster is a NATS server and three agents, each agent a process of
// its own ('safepool serve', built from this repository): agent-1 runs
// beside the server (--listen), agent-2 and agent-3 join it (--nats). A
// pool on it runs in the harness's process, which is then the coordinator
// alone.
type agentCluster struct {
	exe, url, store, cache string
	workers                int // per agent

	mu    sync.Mutex
	procs map[string]*agentProc
	// plain is the in-process server of a cluster started with
	// startPlainAgentCluster, nil for one whose server agent-1 runs.
	plain *server.Server
}

// agentProc is one 'safepool serve' process.
type agentProc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{} // closed once it is reaped
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 64<<10 {
		l.b.Next(l.b.Len() - 32<<10)
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(lastBytes(l.b.Bytes(), 2000))
}

// killable are the agents the kill measurement may SIGKILL: not the one
// beside the server.
var killable = []string{"agent-2", "agent-3"}

// startAgentCluster builds the command, starts the server with agent-1
// and then agent-2 and agent-3, with Workers÷3 workers each (at least 1).
func (b *bench) startAgentCluster(ctx context.Context) (*agentCluster, error) {
	exe, err := buildCLI(ctx, filepath.Join(b.tmp, "safepool-agent"))
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	ac := &agentCluster{
		exe: exe, url: "nats://" + addr, store: filepath.Join(b.tmp, "nats"), cache: b.opts.CacheDir,
		workers: max(b.opts.Workers/3, 1), procs: map[string]*agentProc{},
	}
	if err := ac.start("agent-1", "--listen", addr, "--store", ac.store); err != nil {
		ac.close()
		return nil, err
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			ac.close()
			return nil, fmt.Errorf("the server of 'safepool serve --listen %s' did not listen within 30s: %s", addr, ac.procs["agent-1"].stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, name := range killable {
		if err := ac.start(name, "--nats", ac.url); err != nil {
			ac.close()
			return nil, err
		}
	}
	return ac, nil
}

// startPlainAgentCluster starts a NATS server in this process the way a
// NATS user would, without package cluster (it keeps the disconnect
// advisories in its system account, so pools learn of a lost agent from
// its missing heartbeats), and three agents joining it (--nats), run from
// exe, the command startAgentCluster built.
func (b *bench) startPlainAgentCluster(exe string) (*agentCluster, error) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: filepath.Join(b.tmp, "nats-plain"), NoLog: true, NoSigs: true})
	if err != nil {
		return nil, err
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("a NATS server in this process did not accept connections within 30s")
	}
	ac := &agentCluster{exe: exe, url: srv.ClientURL(), cache: b.opts.CacheDir, workers: max(b.opts.Workers/3, 1),
		procs: map[string]*agentProc{}, plain: srv}
	for _, name := range []string{"agent-1", "agent-2", "agent-3"} {
		if err := ac.start(name, "--nats", ac.url); err != nil {
			ac.close()
			return nil, err
		}
	}
	return ac, nil
}

// start starts the agent name with args.
func (ac *agentCluster) start(name string, args ...string) error {
	args = append([]string{"serve", "--name", name, "--workers", strconv.Itoa(ac.workers), "--cache-dir", ac.cache}, args...)
	cmd := exec.Command(ac.exe, args...)
	p := &agentProc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	ac.mu.Lock()
	ac.procs[name] = p
	ac.mu.Unlock()
	return nil
}

// kill SIGKILLs the agent name and reaps it.
func (ac *agentCluster) kill(name string) error {
	ac.mu.Lock()
	p := ac.procs[name]
	ac.mu.Unlock()
	if p == nil {
		return fmt.Errorf("no agent %s", name)
	}
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s: %w", name, err)
	}
	<-p.done
	return nil
}

// close stops every process with SIGTERM (the agents give back what they
// hold), the server's last, and kills those that do not stop in 30 s.
func (ac *agentCluster) close() {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	stop := func(p *agentProc) {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	for name, p := range ac.procs {
		if name != "agent-1" {
			stop(p)
		}
	}
	if p := ac.procs["agent-1"]; p != nil {
		stop(p)
	}
	ac.procs = map[string]*agentProc{}
	if ac.plain != nil {
		ac.plain.Shutdown()
		ac.plain = nil
	}
}

// agentEvent is what the kill measurement keeps of a pool event.
type agentEvent struct {
	start   bool // a task start, else an agent presumed dead
	index   int
	attempt int
	agent   string
	reason  string
	at      time.Time
}

// agentKill is what one map with an agent's SIGKILL measured.
type agentKill struct {
	// victim is the agent killed, "" when no killable agent started a
	// task of the map, which then ran to its end; how says how its loss
	// was noticed.
	victim, how string
	// From the kill to the pool presuming the agent dead, to a task that
	// had started on it starting on another agent, and to the map's end.
	detect, retry, done time.Duration
	correct             bool // every result ok and in order
}

// clusterAgentKill SIGKILLs agent processes under the retry policy, in
// rounds of two kills:
//
//   - one that runs the only task of a map, while the other agents are
//     idle: the time from the kill to the task's retry starting on
//     another agent is the recovery itself, not a wait behind other work;
//   - one that runs a task of a map of 12 tasks of 300 ms spread over the
//     agents: the time from the kill to the map's last result, and the
//     map's results, all ok and in order.
//
// Both time the kill to the pool presuming the agent dead (the agent-lost
// event). The agent is started again after each kill.
func (b *bench) clusterAgentKill(ctx context.Context, cr *ClusterResults, ac *agentCluster) error {
	evs := make(chan agentEvent, 1<<14)
	p, err := b.newPool(GoGuest, func(c *pool.Config) {
		c.Cluster, c.KillPolicy, c.BatchSize = ac.url, pool.Retry, 1
		c.OnEvent = func(e pool.Event) {
			var ev agentEvent
			switch {
			case e.Kind == pool.EventTaskStart:
				ev = agentEvent{start: true, index: e.Index, attempt: e.Attempt, agent: e.Agent, at: time.Now()}
			case e.Kind == pool.EventWorkerExit && e.WorkerPID == 0 && strings.Contains(e.Reason, " lost: "):
				ev = agentEvent{agent: e.Agent, reason: e.Reason, at: time.Now()}
			default:
				return
			}
			select {
			case evs <- ev:
			default:
			}
		}
	})
	if err != nil {
		return err
	}
	defer closePool(p)
	next := func() (agentEvent, error) {
		select {
		case ev := <-evs:
			return ev, nil
		case <-time.After(time.Minute):
			return agentEvent{}, errors.New("no event for a minute")
		case <-ctx.Done():
			return agentEvent{}, ctx.Err()
		}
	}
	recs := map[string]*ClusterRecovery{}
	record := func(how string) *ClusterRecovery {
		rec := recs[how]
		if rec == nil {
			rec = &ClusterRecovery{Kill: "an agent process of 3 (SIGKILL) under retry, " + how, Correct: true}
			recs[how] = rec
		}
		return rec
	}
	// killRun runs inputs, SIGKILLs the killable agent that starts one
	// of its tasks first, and waits for the pool to presume it dead and
	// for a task that had started on it to start on another agent. It
	// returns what it measured (see agentKill).
	killRun := func(inputs [][]byte, output string) (agentKill, error) {
		var victim, how string
		var detect, retry time.Duration
		for len(evs) > 0 {
			<-evs
		}
		h, err := p.MapAsync(ctx, "sleep", inputs)
		if err != nil {
			return agentKill{}, err
		}
		ran := map[int]bool{} // tasks that started on the victim
		for started := 0; victim == "" && started < len(inputs); {
			ev, err := next()
			if err != nil {
				return agentKill{}, fmt.Errorf("waiting for a task to start: %w", err)
			}
			if !ev.start {
				continue
			}
			started++
			if ev.agent == killable[0] || ev.agent == killable[1] {
				victim = ev.agent
				ran[ev.index] = true
			}
		}
		if victim == "" {
			_, err := h.Wait(ctx)
			return agentKill{}, err
		}
		killed := time.Now()
		if err := ac.kill(victim); err != nil {
			return agentKill{}, err
		}
		for detect == 0 || retry == 0 {
			ev, err := next()
			if err != nil {
				return agentKill{}, fmt.Errorf("%s killed: waiting for its loss and its task's new start: %w", victim, err)
			}
			switch {
			case !ev.start && ev.agent == victim && detect == 0:
				detect = max(ev.at.Sub(killed), 1)
				how = clusterKillAdvisory
				if strings.Contains(ev.reason, "no heartbeat") {
					how = clusterKillHeartbeat
				}
			case ev.start && ev.agent == victim && ev.at.Before(killed.Add(time.Millisecond)):
				ran[ev.index] = true // started before the kill, told after
			case ev.start && ev.agent != victim && ran[ev.index] && retry == 0:
				retry = max(ev.at.Sub(killed), 1)
			}
		}
		rs, err := h.Wait(ctx)
		done := time.Since(killed)
		if err != nil {
			return agentKill{}, fmt.Errorf("%s killed: %w", victim, err)
		}
		correct := len(rs) == len(inputs)
		for i := range rs {
			correct = correct && rs[i].Index == i && rs[i].Status == pool.StatusOK && string(rs[i].Output) == output
		}
		if err := ac.start(victim, "--nats", ac.url); err != nil {
			return agentKill{}, err
		}
		return agentKill{victim, how, detect, retry, done, correct}, nil
	}
	one := [][]byte{[]byte("1500")}
	many := make([][]byte, 12)
	for i := range many {
		many[i] = []byte("300")
	}
	rounds := min(b.opts.Kills, 6)
	for k := range rounds {
		// The lone task: again until a killable agent takes it.
		for try := 0; ; try++ {
			o, err := killRun(one, "slept")
			if err != nil {
				return fmt.Errorf("agent kill %d, lone task: %w", k, err)
			}
			if o.victim == "" {
				if try == 20 {
					return fmt.Errorf("agent kill %d: no task of 20 maps ran on %v", k, killable)
				}
				continue
			}
			rec := record(o.how)
			rec.Samples = append(rec.Samples, o.retry)
			rec.Detect = append(rec.Detect, o.detect)
			rec.Correct = rec.Correct && o.correct
			b.opts.logf("cluster: agent kill %d, lone task (%s, %s): presumed dead after %s, the task's retry started elsewhere after %s, map done after %s, correct %v",
				k, o.victim, o.how, o.detect, o.retry, o.done.Round(time.Millisecond), o.correct)
			break
		}
		o, err := killRun(many, "slept")
		if err != nil {
			return fmt.Errorf("agent kill %d, 12 tasks: %w", k, err)
		}
		if o.victim == "" {
			continue // no task of the map ran on a killable agent
		}
		rec := record(o.how)
		rec.Detect = append(rec.Detect, o.detect)
		rec.Done = append(rec.Done, o.done)
		rec.Correct = rec.Correct && o.correct
		b.opts.logf("cluster: agent kill %d, 12 tasks (%s, %s): presumed dead after %s, map done after %s, correct %v",
			k, o.victim, o.how, o.detect, o.done.Round(time.Millisecond), o.correct)
	}
	for _, how := range []string{clusterKillAdvisory, clusterKillHeartbeat} {
		if rec := recs[how]; rec != nil {
			cr.Recovery = append(cr.Recovery, rec.summarize())
		}
	}
	return nil
}
