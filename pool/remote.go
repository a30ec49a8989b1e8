package pool

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/safepool/safepool/internal/remote"
	"github.com/safepool/safepool/module"
)

// cluster is the dispatcher that runs attempts on a cluster's agents,
// through a transport (internal/remote; package cluster provides one over
// NATS JetStream). It takes jobs from the pool's queue a chunk at a time,
// each chunk holding tasks of one map, and hands every attempt's outcome
// to the pool's sink, exactly once.
//
// Its record of outstanding attempts is the truth, not the transport's: a
// chunk runs only on the agent whose claim it granted, an outcome is taken
// only from the agent holding its chunk, and an agent presumed dead is
// charged once for the task each of its workers was running while the
// tasks it only held go back to the queue without charge; anything it
// sends later is dropped.
type cluster struct {
	cfg    Config
	q      *queue
	sink   func(*outcome)
	emit   func(Event)
	onTrip func(error)
	tr     remote.Coordinator
	id     string      // the pool's ID in the cluster, set by start
	live   atomic.Bool // start has run: the handler takes messages
	spec   remote.Spec
	// hbTimeout is how long an agent holding work may stay silent.
	hbTimeout time.Duration
	// inProcess, when the transport says so, tells the agents running in
	// this process: silence does not make them lost.
	inProcess func(instance string) bool

	mu        sync.Mutex
	nextID    uint64 // attempt IDs
	nextChunk uint64
	chunks    []*rchunk          // outstanding, by ascending base
	byID      map[uint64]*rchunk // outstanding, by chunk ID
	agents    map[string]*ragent // by instance
	tripped   error              // ErrNoAgent while no agent is alive
	noAgents  time.Time          // since when no agent was alive while work waited; zero otherwise
	closed    bool

	wake     chan struct{} // the queue's wake-ups for the pump
	room     chan struct{} // a chunk finished: the window has room
	quit     chan struct{}
	wg       sync.WaitGroup
	ready    chan struct{}
	readyErr chan error // the first module error, before ready
	once     sync.Once
	kind     module.Kind
	handlers []string
}

// rchunk is a chunk sent and not fully answered.
type rchunk struct {
	id     uint64
	base   uint64 // attempt ID of jobs[0]
	run    *run
	jobs   []*job // nil once settled
	left   int
	holder *ragent // the agent whose claim was granted; nil before
	msg    []byte  // its encoding, until it is claimed
	// missed counts heartbeats of the holder that did not list the chunk.
	missed int
}

// ragent is what the pool knows of an agent.
type ragent struct {
	info remote.Agent
	last time.Time
	// running holds the attempts its workers ran at its last heartbeat,
	// and those it said started since (with Config.OnEvent), one per
	// worker (byPID).
	running map[uint64]bool
	byPID   map[int]uint64
	lost    bool
}

// clusterHeartbeatTimeout is how long an agent that holds work may stay
// silent before it is presumed dead: four heartbeats missed in a row, since
// agents beat every 200 ms (agentHeartbeat), and after each batch of
// results. BenchmarkHeartbeatGap (package cluster) measures how late beats
// come from an agent process whose machine is loaded: far less than the
// 600 ms of slack this leaves.
var clusterHeartbeatTimeout = 4 * agentHeartbeat

// maxReleases is how many times agents may give a task back before it
// fails: every agent refuses it.
const maxReleases = 20

func newCluster(cfg Config, spec remote.Spec, q *queue, sink func(*outcome), emit func(Event), onTrip func(error)) *cluster {
	return &cluster{
		cfg: cfg, spec: spec, q: q, sink: sink, emit: emit, onTrip: onTrip,
		hbTimeout: clusterHeartbeatTimeout,
		byID:      map[uint64]*rchunk{}, agents: map[string]*ragent{},
		wake: make(chan struct{}, 1), room: make(chan struct{}, 1), quit: make(chan struct{}),
		ready: make(chan struct{}), readyErr: make(chan error, 1),
	}
}

// start runs the pump and the heartbeat watch over tr.
func (c *cluster) start(tr remote.Coordinator) {
	c.tr, c.id = tr, tr.Pool()
	if ip, ok := tr.(remote.InProcessAgents); ok {
		c.inProcess = ip.InProcessAgent
	}
	c.live.Store(true)
	c.wg.Add(2)
	go c.pump()
	go c.watch()
}

var _ dispatcher = (*cluster)(nil)
var _ remote.Handler = (*cluster)(nil)

// waitReady asks the agents to start workers for the module, again every
// second until one answers, and waits for the first that is ready, or for
// the module's own failure, up to StartTimeout.
func (c *cluster) waitReady(ctx context.Context) (module.Kind, []string, error) {
	t := time.NewTimer(c.cfg.StartTimeout)
	defer t.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if err := c.tr.Prepare(&c.spec); err != nil {
			return 0, nil, fmt.Errorf("cluster: %w", err)
		}
		select {
		case <-c.ready:
			return c.kind, c.handlers, nil
		case err := <-c.readyErr:
			return 0, nil, &moduleStartError{err}
		case <-t.C:
			return 0, nil, fmt.Errorf("%w: no agent joined the cluster %s within %s: start one with 'safepool serve --nats URL'",
				ErrNoAgent, c.cfg.Cluster, c.cfg.StartTimeout)
		case <-ctx.Done():
			return 0, nil, context.Cause(ctx)
		case <-tick.C:
		}
	}
}

func (c *cluster) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tripped
}

// stopRun asks the agents to stop the chunks of r; their outcomes are
// dropped by settle, since r has ended.
func (c *cluster) stopRun(r *run) {
	c.mu.Lock()
	var ids []uint64
	for _, ch := range c.chunks {
		if ch.run == r {
			ids = append(ids, ch.id)
		}
	}
	c.mu.Unlock()
	if len(ids) > 0 {
		_ = c.tr.Stop(&remote.Stop{Pool: c.id, Chunks: ids})
	}
}

// close stops the pump and tells the agents that the pool is gone. Their
// workers stop what they run for it either way.
func (c *cluster) close(kill bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.wg.Wait()
		return
	}
	c.closed = true
	c.mu.Unlock()
	close(c.quit)
	c.wg.Wait()
	if c.tr != nil {
		_ = c.tr.Stop(&remote.Stop{Pool: c.id, All: true})
		_ = c.tr.Close()
	}
}

// workers is what the live agents run, at least 1.
func (c *cluster) workersLocked() int {
	n := 0
	for _, a := range c.agents {
		if !a.lost {
			n += max(a.info.Workers, 1)
		}
	}
	return max(n, 1)
}

// windowLocked is how many chunks may be outstanding: four per worker, so
// that an agent has its next chunk while it runs one, and the stream stays
// shallow.
func (c *cluster) windowLocked() int { return 4 * c.workersLocked() }

// chunkBatches is how many worker batches (Config.BatchSize tasks) a chunk
// may hold. Every chunk costs a publish, a fetch, a claim and an
// acknowledgement, and its agent's workers get batches no larger than its
// queue holds: four batches per chunk halved the host's CPU per task of a
// map of tiny tasks against one. The queue's fair share (pop) still cuts a
// small map into a chunk per worker or more.
const chunkBatches = 4

// pump takes jobs from the queue and sends them as chunks while the window
// has room.
func (c *cluster) pump() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		full := len(c.chunks) >= c.windowLocked()
		workers := c.workersLocked()
		c.mu.Unlock()
		if full {
			select {
			case <-c.room:
				continue
			case <-c.quit:
				return
			}
		}
		jobs := c.q.pop(chunkBatches*c.cfg.BatchSize, workers, c.wake)
		if len(jobs) == 0 {
			if !c.q.wait(c.wake) {
				continue
			}
			select {
			case <-c.wake:
			case <-c.quit:
				c.q.unwait(c.wake)
				return
			}
			continue
		}
		c.send(jobs)
	}
}

// send sends jobs as chunks: one per map, each within the transport's
// payload limit. An input too large for any message travels as an object.
func (c *cluster) send(jobs []*job) {
	limit := c.tr.MaxPayload() - remote.ChunkOverhead
	for len(jobs) > 0 {
		r := jobs[0].run
		n, size := 0, 0
		for n < len(jobs) && jobs[n].run == r {
			s := len(jobs[n].input) + len(r.fn) + remote.TaskOverhead
			if s > limit {
				s = 128 + len(r.fn) + remote.TaskOverhead // sent as an object
			}
			if n > 0 && size+s > limit {
				break
			}
			size += s
			n++
		}
		c.sendChunk(r, jobs[:n])
		jobs = jobs[n:]
	}
}

func (c *cluster) sendChunk(r *run, jobs []*job) {
	limit := c.tr.MaxPayload() - remote.ChunkOverhead
	size := remote.ChunkOverhead
	for _, j := range jobs {
		size += 4 + len(j.input)
	}
	c.mu.Lock()
	c.nextChunk++
	ch := &rchunk{id: c.nextChunk, base: c.nextID + 1, run: r, jobs: jobs, left: len(jobs)}
	c.nextID += uint64(len(jobs))
	// The chunk is encoded straight from the jobs: one Task, reused.
	var w remote.ChunkWriter
	w.Begin(make([]byte, 0, min(size, limit+remote.ChunkOverhead)), ch.id, &c.spec, len(jobs), r.fn)
	var refs []int // jobs whose input goes as an object
	for i, j := range jobs {
		j.id = ch.base + uint64(i)
		t := remote.Task{ID: j.id, Func: r.fn, Input: j.input, Gate: j.gateHold && c.cfg.Retry.MinAvailable > 0}
		if j.memLimit != c.cfg.MemoryLimit {
			t.MemoryLimit = j.memLimit
		}
		if len(j.input)+len(r.fn)+remote.TaskOverhead > limit {
			t.Input, t.InputRef = nil, inputRef(c.id, j.id)
			refs = append(refs, i)
		}
		w.Add(&t)
	}
	ch.msg = w.Bytes()
	c.chunks = append(c.chunks, ch)
	c.byID[ch.id] = ch
	msg := ch.msg
	c.mu.Unlock()

	for _, i := range refs {
		j := jobs[i]
		if err := c.tr.PutObject(context.Background(), inputRef(c.id, j.id), j.input); err != nil {
			c.failChunkTask(ch, i, fmt.Sprintf("cluster: the input of %d bytes is larger than a message (%d bytes) and could not be stored as an object: %v",
				len(j.input), limit, err))
		}
	}
	if err := c.tr.Send(context.Background(), ch.id, msg); err != nil {
		// Not sent: the chunk's tasks go back to the queue without
		// charge, after a pause so that a broken connection is not
		// hammered.
		c.giveBack(ch, nil, "")
		select {
		case <-time.After(100 * time.Millisecond):
		case <-c.quit:
		}
	}
}

// inputRef is the object's key of an input too large for a message.
func inputRef(pool string, id uint64) string { return pool + "/in/" + strconv.FormatUint(id, 10) }

// failChunkTask ends task i of ch with an error that is not the task's
// doing and will not get better with a retry.
func (c *cluster) failChunkTask(ch *rchunk, i int, why string) {
	c.mu.Lock()
	j := ch.jobs[i]
	if j != nil {
		ch.jobs[i] = nil
		c.leftLocked(ch, 1)
	}
	c.mu.Unlock()
	if j != nil {
		c.sink(&outcome{job: j, res: Result{Index: j.index, Status: StatusError, Error: why}, final: true})
	}
}

// leftLocked counts n settled attempts of ch, and forgets ch when none is
// left.
func (c *cluster) leftLocked(ch *rchunk, n int) {
	ch.left -= n
	if ch.left > 0 {
		return
	}
	if _, ok := c.byID[ch.id]; !ok {
		return
	}
	delete(c.byID, ch.id)
	c.chunks = slices.DeleteFunc(c.chunks, func(x *rchunk) bool { return x == ch })
	select {
	case c.room <- struct{}{}:
	default:
	}
}

// findLocked returns the outstanding chunk holding attempt id.
func (c *cluster) findLocked(id uint64) (*rchunk, int) {
	i := sort.Search(len(c.chunks), func(i int) bool {
		ch := c.chunks[i]
		return ch.base+uint64(len(ch.jobs)) > id
	})
	if i < len(c.chunks) && c.chunks[i].base <= id {
		return c.chunks[i], int(id - c.chunks[i].base)
	}
	return nil, 0
}

// giveBack puts the unsettled tasks of ch back at the front of the queue,
// without charge, except those in charge, which the agent holding ch was
// running when it was lost: each of them ends with a killed attempt.
func (c *cluster) giveBack(ch *rchunk, charge map[uint64]bool, why string) {
	c.mu.Lock()
	var back []*job
	var blamed []*job
	for i, j := range ch.jobs {
		if j == nil {
			continue
		}
		ch.jobs[i] = nil
		if charge[ch.base+uint64(i)] {
			blamed = append(blamed, j)
		} else {
			back = append(back, j)
		}
	}
	c.leftLocked(ch, len(back)+len(blamed))
	var holder remote.Agent
	if ch.holder != nil {
		holder = ch.holder.info
	}
	c.mu.Unlock()
	c.q.pushFront(back)
	now := time.Now()
	for _, j := range blamed {
		res := Result{
			Index: j.index, Status: StatusKilled, Error: holder.String() + " lost while running the task: " + why,
			Stats: Stats{End: now, MemoryLimit: j.memLimit, Agent: holder.Name, Host: holder.Host},
		}
		c.sink(&outcome{job: j, res: res, death: &death{ExitCode: -1}})
	}
}

// agentLocked returns the record of agent a, made on first sight.
func (c *cluster) agentLocked(a remote.Agent) *ragent {
	ag := c.agents[a.Instance]
	if ag == nil {
		ag = &ragent{info: a}
		c.agents[a.Instance] = ag
	}
	ag.info.Workers = a.Workers
	if !ag.lost {
		ag.last = time.Now()
	}
	return ag
}

// Ready takes an agent's answer to Prepare.
func (c *cluster) Ready(r *remote.Ready) {
	if r.Pool != c.id || !c.live.Load() {
		return
	}
	c.mu.Lock()
	c.agentLocked(r.Agent)
	c.recoverLocked()
	c.mu.Unlock()
	if r.Err != "" {
		c.emit(Event{Kind: EventWarning, Reason: r.Agent.String() + " cannot run the module: " + r.Err})
		if r.ModuleErr {
			select {
			case c.readyErr <- fmt.Errorf("%s: %s", r.Agent, r.Err):
			default:
			}
		}
		return
	}
	c.once.Do(func() {
		c.kind = module.Kind(r.Kind)
		c.handlers = slices.Clone(r.Handlers)
		close(c.ready)
	})
}

// Claim grants a chunk to the first live agent that asks for it.
func (c *cluster) Claim(cl *remote.Claim) bool {
	if cl.Pool != c.id || !c.live.Load() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ag := c.agentLocked(cl.Agent)
	c.reviveLocked(ag)
	ch := c.byID[cl.Chunk]
	switch {
	case ch == nil:
		return false
	case ch.holder != nil:
		return ch.holder == ag
	case ch.run.finished():
		// Its map ended: nobody needs its tasks.
		for i := range ch.jobs {
			ch.jobs[i] = nil
		}
		c.leftLocked(ch, ch.left)
		return false
	}
	ch.holder = ag
	ch.msg = nil
	c.recoverLocked()
	return true
}

// Results settles the attempts an agent answered. An answer from an agent
// that does not hold the attempt's chunk (one presumed dead) is dropped.
func (c *cluster) Results(rs *remote.Results) {
	if rs.Pool != c.id || !c.live.Load() {
		return
	}
	type got struct {
		j *job
		r *remote.Result
	}
	out := make([]got, 0, len(rs.Results))
	c.mu.Lock()
	ag := c.agentLocked(rs.Agent)
	var starts []Event
	var ch *rchunk // the results of a message are mostly one chunk's, in a row
	for i := range rs.Results {
		x := &rs.Results[i]
		var k int
		if ch != nil && x.ID >= ch.base && x.ID-ch.base < uint64(len(ch.jobs)) {
			k = int(x.ID - ch.base) // a chunk no longer outstanding has no job left
		} else {
			ch, k = c.findLocked(x.ID)
		}
		if ch == nil || ch.holder != ag || ag.lost || ch.jobs[k] == nil {
			// Not its attempt; or it was presumed dead, and what it held
			// is being given back (AgentLost), with the record of what
			// its workers ran, which must not change meanwhile.
			continue
		}
		if x.IsStart() {
			// The worker that started it runs nothing else now.
			if ag.running == nil {
				ag.running = map[uint64]bool{}
			}
			if ag.byPID == nil {
				ag.byPID = map[int]uint64{}
			}
			if prev, ok := ag.byPID[x.WorkerPID]; ok {
				delete(ag.running, prev)
			}
			ag.byPID[x.WorkerPID], ag.running[x.ID] = x.ID, true
			j := ch.jobs[k]
			starts = append(starts, Event{Kind: EventTaskStart, Time: time.Unix(0, x.Start), WorkerPID: x.WorkerPID,
				Index: j.index, Func: ch.run.fn, Attempt: j.attempts + 1, Agent: rs.Agent.Name, Host: rs.Agent.Host,
				Map: ch.run.id, ctx: ch.run.ctx})
			continue
		}
		out = append(out, got{ch.jobs[k], x})
		ch.jobs[k] = nil
		c.leftLocked(ch, 1)
	}
	if rs.Beat && !ag.lost {
		// What its workers run as these results left, as a heartbeat
		// says it. The map is replaced in place: AgentLost keeps the
		// one it charges only once the agent is lost.
		if ag.running == nil {
			ag.running = make(map[uint64]bool, len(rs.Running))
		} else {
			clear(ag.running)
		}
		for _, id := range rs.Running {
			ag.running[id] = true
		}
		ag.byPID = nil
	}
	c.mu.Unlock()
	for _, e := range starts {
		c.emit(e)
	}
	var o outcome // the sink's, for each result in turn
	for i, g := range out {
		o = c.outcomeOf(g.j, g.r, rs.Agent)
		o.more = i+1 < len(out) && out[i+1].j.run == g.j.run
		c.sink(&o)
	}
}

// outcomeOf turns an agent's result into an outcome.
func (c *cluster) outcomeOf(j *job, x *remote.Result, a remote.Agent) outcome {
	res := Result{
		Index:  j.index,
		Status: Status(x.Status),
		Output: x.Output,
		Error:  x.Error,
		Log:    x.Log,
		Stats: Stats{
			Start: time.Unix(0, x.Start), End: time.Unix(0, x.End),
			WorkerPID: x.WorkerPID, PeakMemory: x.PeakMemory, MemoryLimit: j.memLimit,
			Agent: a.Name, Host: a.Host,
		},
	}
	if x.OutputRef != "" {
		out, err := c.tr.GetObject(context.Background(), x.OutputRef)
		c.tr.DeleteObject(x.OutputRef)
		if err != nil {
			res.Status, res.Output = StatusError, nil
			res.Error = "cluster: the task's output was stored as an object that could not be fetched: " + err.Error()
		} else {
			res.Output = out
		}
	}
	o := outcome{job: j, res: res}
	if x.GateFailed != "" {
		o.gateFailed = x.GateFailed
	}
	if x.Died {
		o.death = &death{Signal: x.Signal, ExitCode: x.ExitCode, Hung: x.Hung}
		o.res.Error += " (" + a.String() + ")"
	}
	return o
}

// Heartbeat records that an agent is alive and what it runs. A chunk the
// pool granted to it that two heartbeats in a row do not list was dropped
// or its results were lost: its unanswered tasks go back to the queue
// without charge. A heartbeat from an agent presumed dead that lists
// chunks tells it to stop them.
func (c *cluster) Heartbeat(h *remote.Heartbeat) {
	if !c.live.Load() {
		return
	}
	var hold *remote.Holding
	for i := range h.Holding {
		if h.Holding[i].Pool == c.id {
			hold = &h.Holding[i]
		}
	}
	c.mu.Lock()
	ag := c.agentLocked(h.Agent)
	c.reviveLocked(ag)
	c.recoverLocked()
	var stale, lostChunks []uint64
	var drop []*rchunk
	if hold != nil {
		ag.running, ag.byPID = make(map[uint64]bool, len(hold.Running)), nil
		for _, id := range hold.Running {
			ag.running[id] = true
		}
		for _, id := range hold.Chunks {
			if ch := c.byID[id]; ch == nil || ch.holder != ag {
				if ch == nil || ch.holder != nil {
					stale = append(stale, id)
				}
			}
		}
	}
	for _, ch := range c.chunks {
		if ch.holder != ag {
			continue
		}
		if hold != nil && slices.Contains(hold.Chunks, ch.id) {
			ch.missed = 0
			continue
		}
		if ch.missed++; ch.missed >= 2 {
			drop = append(drop, ch)
			lostChunks = append(lostChunks, ch.id)
		}
	}
	c.mu.Unlock()
	if len(stale) > 0 {
		_ = c.tr.Stop(&remote.Stop{Pool: c.id, Chunks: stale})
	}
	for _, ch := range drop {
		c.giveBack(ch, nil, "")
	}
	if len(lostChunks) > 0 {
		c.emit(Event{Kind: EventWarning, Reason: fmt.Sprintf("%s no longer holds chunks %v without having answered them all; their tasks run again", h.Agent, lostChunks)})
	}
}

// Release puts back the tasks an agent could not run, without charge; a
// task that every agent keeps giving back ends with an error.
func (c *cluster) Release(r *remote.Release) {
	if r.Pool != c.id || !c.live.Load() {
		return
	}
	var back, failed []*job
	c.mu.Lock()
	ag := c.agentLocked(r.Agent)
	for _, id := range r.IDs {
		ch, k := c.findLocked(id)
		if ch == nil || ch.holder != ag || ch.jobs[k] == nil {
			continue
		}
		j := ch.jobs[k]
		ch.jobs[k] = nil
		c.leftLocked(ch, 1)
		if j.releases++; j.releases >= maxReleases {
			failed = append(failed, j)
		} else {
			back = append(back, j)
		}
	}
	c.mu.Unlock()
	c.q.pushFront(back)
	for _, j := range failed {
		c.sink(&outcome{job: j, final: true, res: Result{Index: j.index, Status: StatusError,
			Error: fmt.Sprintf("cluster: agents gave the task back %d times; the last, %s, said: %s", j.releases, r.Agent, r.Why)}})
	}
}

// AgentLost charges the tasks the agent's workers were running, at its
// last heartbeat, one killed attempt each, and puts back the rest of what
// it held without charge.
//
// The chunks it had fetched from the work queue and not claimed yet are
// known only to the queue, which would give them to another agent once its
// ack wait (5 s) ran out: every chunk no agent has claimed is sent again
// at once instead, even for an agent the pool never heard from (it may
// have fetched before it spoke). A chunk is granted once, so of two copies
// only one runs; the other's claim is refused and it is dropped.
func (c *cluster) AgentLost(instance, why string) {
	c.mu.Lock()
	ag := c.agents[instance]
	if ag == nil || ag.lost {
		c.mu.Unlock()
		if ag == nil {
			c.sendUnclaimed()
		}
		return
	}
	ag.lost = true
	running, info := ag.running, ag.info
	var held []*rchunk
	for _, ch := range c.chunks {
		if ch.holder == ag {
			held = append(held, ch)
		}
	}
	c.mu.Unlock()
	c.emit(Event{Kind: EventWorkerExit, Reason: info.String() + " lost: " + why, Agent: info.Name, Host: info.Host})
	for _, ch := range held {
		c.giveBack(ch, running, why)
	}
	c.sendUnclaimed()
}

// Reconnected sends again the chunks no agent has claimed: the work queue
// may have lost them. A chunk is granted once, so a copy is harmless.
func (c *cluster) Reconnected() { c.sendUnclaimed() }

// sendUnclaimed sends again every chunk no agent has claimed.
func (c *cluster) sendUnclaimed() {
	if !c.live.Load() {
		return
	}
	type unclaimed struct {
		id  uint64
		msg []byte
	}
	c.mu.Lock()
	var again []unclaimed
	for _, ch := range c.chunks {
		if ch.holder == nil && ch.msg != nil {
			again = append(again, unclaimed{ch.id, ch.msg})
		}
	}
	c.mu.Unlock()
	for _, u := range again {
		_ = c.tr.Send(context.Background(), u.id, u.msg)
	}
}

// watch presumes dead the agents that hold work and have been silent for
// hbTimeout, and opens the breaker when no agent has been alive for
// StartGiveUp while work waits.
//
// It looks every 32nd of hbTimeout (25 ms), so that an agent is presumed
// dead at most that long after its silence passed hbTimeout: a check costs
// a lock and a walk over the pool's agents.
func (c *cluster) watch() {
	defer c.wg.Done()
	t := time.NewTicker(c.hbTimeout / 32)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case now := <-t.C:
			c.mu.Lock()
			var silent []*ragent
			alive := 0
			for _, a := range c.agents {
				if a.lost {
					continue
				}
				if now.Sub(a.last) > c.hbTimeout && (c.inProcess == nil || !c.inProcess(a.info.Instance)) {
					silent = append(silent, a)
					continue
				}
				alive++
			}
			var trip error
			waiting := len(c.chunks) > 0 || !c.q.empty()
			switch {
			case alive > 0 || !waiting:
				c.noAgents = time.Time{}
			case c.noAgents.IsZero():
				c.noAgents = now
			case c.tripped == nil && now.Sub(c.noAgents) >= c.cfg.StartGiveUp:
				c.tripped = fmt.Errorf("%w: none has been alive for %s while tasks waited; the pool takes maps again once an agent joins",
					ErrNoAgent, now.Sub(c.noAgents).Round(time.Second))
				trip = c.tripped
			}
			c.mu.Unlock()
			for _, a := range silent {
				c.AgentLost(a.info.Instance, fmt.Sprintf("no heartbeat for %s", c.hbTimeout))
			}
			if trip != nil {
				c.onTrip(trip)
			}
		}
	}
}

// reviveLocked takes back an agent presumed dead that speaks again: what
// it held was settled or sent elsewhere, and its late answers for it are
// dropped, but it may take new chunks. (Refusing its claims would lose
// them: a refused chunk leaves the work queue.)
func (c *cluster) reviveLocked(ag *ragent) {
	if ag.lost {
		ag.lost, ag.running, ag.byPID, ag.last = false, nil, nil, time.Now()
	}
}

// recoverLocked closes the breaker: an agent is alive.
func (c *cluster) recoverLocked() {
	c.noAgents = time.Time{}
	c.tripped = nil
}

// startCluster starts a pool whose tasks run on a cluster: it checks the
// module, stores it where agents fetch it (by its SHA-256), and waits for
// the first agent that has started workers for it.
func (p *Pool) startCluster(ctx context.Context) (*Pool, error) {
	cfg := p.cfg
	wasm := cfg.ModuleBytes
	if wasm == nil {
		var err error
		if wasm, err = os.ReadFile(cfg.Module); err != nil {
			return nil, fmt.Errorf("pool: read module: %w", err)
		}
	}
	// The module's imports and exports are checked here, at once; the
	// agents validate and compile it.
	if _, err := module.InspectWith(wasm, func() error { return nil }); err != nil {
		return nil, fmt.Errorf("pool: module %s: %w", moduleName(cfg), err)
	}
	sum := sha256.Sum256(wasm)
	spec := remote.Spec{
		Module: hex.EncodeToString(sum[:]), ModuleSize: int64(len(wasm)), Name: filepath.Base(moduleName(cfg)),
		Engine: cfg.Engine, MemoryLimit: cfg.MemoryLimit, Timeout: cfg.Timeout, StartTimeout: cfg.StartTimeout,
		OutputLimit: cfg.OutputLimit, LogLimit: cfg.LogLimit, FreshInstance: cfg.FreshInstance, BatchSize: cfg.BatchSize,
		MinAvailable: cfg.Retry.MinAvailable, GateTimeout: cfg.Retry.GateTimeout, Events: cfg.OnEvent != nil,
		Env: envList(cfg.Env), Args: cfg.Args, Dirs: remoteDirs(cfg.Dirs),
	}
	c := newCluster(cfg, spec, p.q, p.settle, p.emit, p.failAll)
	tr, err := remote.Open(ctx, remote.OpenConfig{
		Target: cfg.Cluster, Options: cfg.ClusterOptions,
		Workers: cfg.Workers, Spares: cfg.Spares, CacheDir: cfg.CacheDir, WorkerCommand: cfg.WorkerCommand,
	}, c)
	if err != nil {
		if errors.Is(err, remote.ErrNoTransport) {
			return nil, fmt.Errorf("pool: cluster %s: %w", cfg.Cluster, err)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrCluster, cfg.Cluster, err)
	}
	c.spec.Pool = tr.Pool()
	if err := tr.PutObject(ctx, spec.Module, wasm); err != nil {
		tr.Close()
		return nil, fmt.Errorf("%w: %s: store the module: %w", ErrCluster, cfg.Cluster, err)
	}
	c.start(tr)
	p.disp = c
	return p.ready(ctx)
}
