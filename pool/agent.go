package pool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/internal/remote"
	"github.com/safepool/safepool/internal/wire"
)

func init() { remote.RunAgent = runAgent }

// An agent runs the chunks of a cluster's pools on worker processes of its
// machine. For each pool it keeps a local dispatcher (the same as a local
// pool's: drivers, spares, the breaker, the hang watchdog) with a queue of
// its own. It takes a chunk from the work queue only when it has room, runs
// it only once the pool granted its claim, and sends each attempt's result
// back. Its heartbeats say which chunks it holds and which attempt each of
// its workers is running, which is what the pool charges if the agent dies.
type agent struct {
	cfg remote.AgentConfig
	me  remote.Agent
	tr  remote.AgentTransport
	ctx context.Context

	mu    sync.Mutex
	pools map[string]*apool
	gone  map[string]bool // pools that said they closed: never started again
	held  int             // chunks held, across pools
	room  chan struct{}   // a chunk ended
	// wg counts the agent's goroutines; runAgent waits for them. Those
	// started from the transport's callbacks are added under mu, and not
	// at all once stopping is set, so that no Add races the Wait.
	wg       sync.WaitGroup
	stopping bool
}

// apool is an agent's side of one pool.
type apool struct {
	a    *agent
	spec remote.Spec
	q    *queue

	// ready is closed when the workers are up (disp set) or cannot start
	// (err set).
	ready  chan struct{}
	disp   *local
	err    error
	modErr bool

	// Under a.mu:
	chunks map[*run]*achunk
	byID   map[uint64]*achunk
	used   time.Time // last chunk taken
	closed bool

	// Under outMu, which the drivers take once per result and nothing
	// else holds long: results waiting for the flusher, encoded as they
	// come (out), the attempt each answers (outRef), and the messages
	// already full (sealed).
	outMu  sync.Mutex
	out    remote.ResultsWriter
	outRef []aref
	sealed []resultsMsg

	kick chan struct{} // results are waiting to be sent
}

// achunk is a chunk the agent holds: granted to it and not fully answered.
type achunk struct {
	id  uint64
	run *run
	// jobs are its attempts, made as the chunk is decoded: job i is
	// attempt i, whose ID in its pool is remoteID. One allocation for
	// the chunk's jobs.
	jobs []job
	// refs names the objects holding the inputs too large for a message,
	// by attempt; nil when there is none.
	refs map[int]string
	// done[i] is set once attempt i's result is sent or the attempt was
	// given back: nothing more is sent for it.
	done []bool
	left int  // attempts not done
	held bool // in p.byID: dropped chunks send nothing
}

// owns reports whether attempt i of ch still waits for its result to be
// sent. Under a.mu.
func (ch *achunk) owns(i int) bool { return ch != nil && ch.held && !ch.done[i] }

// aref is the attempt a result waiting for the flusher answers: attempt i
// of the chunk whose run is run; start when the result says only that the
// attempt started.
type aref struct {
	run   *run
	i     int
	start bool
}

// resultsMsg is a message of results waiting for the flusher.
type resultsMsg struct {
	w    remote.ResultsWriter
	refs []aref
}

// agentHeartbeat is the agents' default interval of heartbeats: pools
// presume an agent dead after four missed (clusterHeartbeatTimeout).
const agentHeartbeat = 200 * time.Millisecond

// idlePool is how long a pool's workers stay up with nothing to do before
// the agent stops them (the pool may have gone without a word).
const idlePool = 2 * time.Minute

func runAgent(ctx context.Context, cfg remote.AgentConfig, tr remote.AgentTransport, subscribe func(remote.AgentHandler) error) error {
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.NumCPU()
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = agentHeartbeat
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = engine.DefaultCacheDir()
	}
	host, _ := os.Hostname()
	if cfg.Name == "" {
		cfg.Name = host + "-" + strconv.Itoa(os.Getpid())
	}
	if cfg.Instance == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		cfg.Instance = hex.EncodeToString(b[:])
	}
	a := &agent{
		cfg: cfg, tr: tr, ctx: ctx,
		me:    remote.Agent{Name: cfg.Name, Host: host, Instance: cfg.Instance, Workers: cfg.Workers},
		pools: map[string]*apool{}, gone: map[string]bool{}, room: make(chan struct{}, 1),
	}
	if err := subscribe(a); err != nil {
		return fmt.Errorf("agent: subscribe: %w", err)
	}
	a.logf("%s ready with %d workers", a.me, cfg.Workers)
	a.wg.Add(1)
	go a.beat()
	for ctx.Err() == nil {
		a.mu.Lock()
		full := a.held >= 4*cfg.Workers
		a.mu.Unlock()
		if full {
			select {
			case <-a.room:
			case <-ctx.Done():
			}
			continue
		}
		c, err := tr.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				a.logf("work queue: %v", err)
				select {
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
				}
			}
			continue
		}
		// Claims go out concurrently: a claim waits its turn behind the
		// pool's other messages, and the next chunk should not wait for it.
		switch p, ch, again := a.hold(c); {
		case ch != nil:
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				a.claim(p, ch, c)
			}()
		case again:
			// The chunk it holds already: the claim only acknowledges
			// this delivery, and the pool's answer changes nothing.
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				_, _ = a.tr.Claim(a.ctx, &remote.Claim{Pool: c.Spec.Pool, Chunk: c.ID, Agent: a.me})
			}()
		}
	}
	a.shutdown()
	a.wg.Wait()
	return nil
}

// observe hands ev to the agent's Observer, if any, naming the agent.
func (a *agent) observe(ev Event) {
	if a.cfg.Observer == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.job, ev.Agent, ev.Host = nil, a.me.Name, a.me.Host
	a.cfg.Observer(ev)
}

func (a *agent) logf(format string, args ...any) {
	if a.cfg.Logf != nil {
		a.cfg.Logf(format, args...)
	}
}

// Prepare starts workers for a pool, and answers when they are up.
func (a *agent) Prepare(s *remote.Spec) {
	p := a.poolFor(s)
	if p == nil {
		return
	}
	a.mu.Lock()
	if a.stopping {
		a.mu.Unlock()
		return // shutdown releases the pool
	}
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		select {
		case <-p.ready:
		case <-a.ctx.Done():
			return
		}
		a.sendReady(p)
	}()
}

func (a *agent) sendReady(p *apool) {
	r := &remote.Ready{Pool: p.spec.Pool, Agent: a.me}
	if p.err != nil {
		r.Err, r.ModuleErr = p.err.Error(), p.modErr
	} else {
		r.Kind = uint8(p.disp.kind)
		r.Handlers = p.disp.handlers
	}
	if err := a.tr.SendReady(r); err != nil {
		a.logf("pool %s: ready: %v", p.spec.Pool, err)
	}
}

// Stop stops chunks of a pool, or the whole pool.
func (a *agent) Stop(s *remote.Stop) {
	a.mu.Lock()
	if s.All {
		a.gone[s.Pool] = true
	}
	p := a.pools[s.Pool]
	if p == nil {
		a.mu.Unlock()
		return
	}
	if s.All {
		a.closePoolLocked(p)
		if a.stopping {
			a.mu.Unlock()
			return // shutdown stops the workers of every pool
		}
		a.wg.Add(1)
		a.mu.Unlock()
		go func() { defer a.wg.Done(); p.stopWorkers() }()
		return
	}
	var runs []*run
	for _, id := range s.Chunks {
		if ch := p.byID[id]; ch != nil {
			a.dropLocked(p, ch)
			runs = append(runs, ch.run)
		}
	}
	a.mu.Unlock()
	if p.disp != nil {
		for _, r := range runs {
			p.disp.stopRun(r)
		}
	}
}

// poolFor returns the agent's side of the pool spec names, starting it on
// first sight.
func (a *agent) poolFor(s *remote.Spec) *apool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx.Err() != nil || a.stopping {
		return nil
	}
	if p := a.pools[s.Pool]; p != nil {
		return p
	}
	if a.gone[s.Pool] {
		return nil // a late Prepare or chunk of a pool that closed
	}
	p := &apool{
		a: a, spec: *s, q: newQueue(), ready: make(chan struct{}),
		chunks: map[*run]*achunk{}, byID: map[uint64]*achunk{}, used: time.Now(),
		kick: make(chan struct{}, 1),
	}
	a.pools[s.Pool] = p
	a.wg.Add(2)
	go p.start()
	go p.flush()
	return p
}

// start fetches the module, checks its digest, compiles it into the cache
// and starts the workers.
func (p *apool) start() {
	defer p.a.wg.Done()
	defer close(p.ready)
	a, s := p.a, &p.spec
	fail := func(modErr bool, err error) {
		p.err, p.modErr = err, modErr
		a.logf("pool %s: %v", s.Pool, err)
	}
	wasm, err := a.tr.Object(a.ctx, s.Module)
	if err != nil {
		fail(true, fmt.Errorf("fetch module %s: %w", s.Name, err))
		return
	}
	dir := filepath.Join(a.cfg.CacheDir, "modules")
	path := filepath.Join(dir, s.Module+".wasm")
	if _, err := os.Stat(path); err != nil {
		if err := writeFileAtomic(dir, path, wasm); err != nil {
			fail(false, fmt.Errorf("store module: %w", err))
			return
		}
	}
	cfg, err := Config{
		Module: path, Workers: a.cfg.Workers, Spares: a.cfg.Spares, MemoryLimit: s.MemoryLimit,
		Timeout: s.Timeout, StartTimeout: s.StartTimeout, OutputLimit: s.OutputLimit, LogLimit: s.LogLimit,
		FreshInstance: s.FreshInstance, BatchSize: s.BatchSize, Engine: s.Engine, CacheDir: a.cfg.CacheDir,
		WorkerCommand: a.cfg.WorkerCommand, Overcommit: true,
		Env: envMap(s.Env), Args: s.Args, Dirs: dirsOf(s.Dirs), program: s.Name,
	}.withDefaults()
	if err != nil {
		fail(true, err)
		return
	}
	if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
		fail(false, err)
		return
	}
	if !engine.Prepared(cfg.Engine, wasm, cfg.CacheDir, compileOptions(cfg)) {
		if err := prepareModule(a.ctx, cfg, wasm, cfg.CacheDir); err != nil {
			fail(true, err)
			return
		}
	}
	init := workerInit(cfg, path, cfg.CacheDir)
	init.Events = s.Events
	d := newLocal(cfg, init, p.q, p.sink, func(ev Event) {
		switch {
		case ev.Kind == EventTaskStart && ev.job != nil:
			p.sendResult(ev.job, remote.Result{ID: ev.job.remoteID, WorkerPID: ev.WorkerPID, Start: ev.Time.UnixNano()})
		case ev.Kind == EventWorkerExit || ev.Kind == EventWarning:
			a.logf("pool %s: %s", s.Pool, ev.Reason)
		}
		if ev.Kind != EventTaskStart {
			a.observe(ev)
		}
	}, p.onTrip)
	d.delivered = p.kickFlush
	_, _, err = d.waitReady(a.ctx)
	if err != nil {
		d.close(true)
		var me *moduleStartError
		fail(errors.As(err, &me), err)
		return
	}
	p.disp = d
}

// workerInit is the handshake's configuration for workers of cfg.
func workerInit(cfg Config, modPath, cache string) wire.Init {
	return wire.Init{
		ModulePath:    modPath,
		CacheDir:      cache,
		Engine:        cfg.Engine,
		MemoryLimit:   uint64(cfg.MemoryLimit),
		Timeout:       cfg.Timeout,
		OutputLimit:   uint64(cfg.OutputLimit),
		LogLimit:      uint64(cfg.LogLimit),
		FreshInstance: cfg.FreshInstance,
		Events:        cfg.OnEvent != nil,
		ProcessLimit:  processLimit(cfg),
		StartTimeout:  cfg.StartTimeout,
		Env:           envList(cfg.Env),
		Args:          cfg.Args,
		Program:       programName(cfg),
		Dirs:          wireDirs(cfg.Dirs),
		HostFuncs:     hostFuncNames(cfg.HostFuncs),
	}
}

// programName is the guest's argv[0]: the module's file name.
func programName(cfg Config) string {
	if cfg.program != "" {
		return cfg.program
	}
	if cfg.Module == "" {
		return "module.wasm"
	}
	return filepath.Base(cfg.Module)
}

func writeFileAtomic(dir, path string, b []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".module-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// hold registers a chunk the agent took from the work queue as held, and
// so listed in heartbeats, from before its claim is sent until after its
// last result is: a heartbeat that does not list it comes after all its
// results. It makes the chunk's jobs as it reads the tasks from the
// message, in one slab.
//
// A chunk delivered again while the agent holds it (its claim came later
// than the stream's ack wait, or its pool sent it again when an agent was
// lost) is not held twice: again is set, and the caller only claims it,
// which acknowledges the new delivery.
func (a *agent) hold(c *remote.Chunk) (p *apool, ch *achunk, again bool) {
	n := c.Len()
	if n == 0 {
		return nil, nil, false
	}
	if p = a.poolFor(&c.Spec); p == nil {
		return nil, nil, false
	}
	a.mu.Lock()
	known := p.byID[c.ID] != nil
	a.mu.Unlock()
	if known {
		return p, nil, true
	}
	r := &run{memLimit: c.Spec.MemoryLimit, done: make(chan struct{})}
	ch = &achunk{id: c.ID, run: r, jobs: make([]job, n), done: make([]bool, n), left: n, held: true}
	for i, t := range c.All() {
		if i == 0 {
			r.fn = t.Func
		}
		j := &ch.jobs[i]
		*j = job{run: r, index: i, input: t.Input, memLimit: c.Spec.MemoryLimit, remoteID: t.ID, gateHold: t.Gate}
		if t.MemoryLimit > 0 {
			j.memLimit = t.MemoryLimit
		}
		if t.InputRef != "" {
			if ch.refs == nil {
				ch.refs = map[int]string{}
			}
			ch.refs[i] = t.InputRef
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if p.closed {
		return nil, nil, false
	}
	if p.byID[c.ID] != nil {
		return p, nil, true
	}
	p.chunks[r], p.byID[c.ID] = ch, ch
	p.used = time.Now()
	a.held++
	return p, ch, false
}

// claim asks the pool for a chunk held and, once granted, queues its tasks.
func (a *agent) claim(p *apool, ch *achunk, c *remote.Chunk) {
	r := ch.run
	ok, err := a.tr.Claim(a.ctx, &remote.Claim{Pool: c.Spec.Pool, Chunk: c.ID, Agent: a.me})
	if err != nil || !ok {
		if err != nil {
			a.logf("pool %s: claim chunk %d: %v", c.Spec.Pool, c.ID, err)
		}
		a.mu.Lock()
		a.dropLocked(p, ch)
		a.mu.Unlock()
		return
	}
	select {
	case <-p.ready:
	case <-a.ctx.Done():
		return // shutdown releases it
	}
	if p.err != nil {
		a.release(p, ch, nil, "its workers cannot start: "+p.err.Error())
		return
	}
	jobs := make([]*job, 0, len(ch.jobs))
	var refuse []int
	for i := range ch.jobs {
		j := &ch.jobs[i]
		if a.cfg.MaxMemory > 0 && j.memLimit > a.cfg.MaxMemory {
			refuse = append(refuse, i)
			continue
		}
		if ref, ok := ch.refs[i]; ok {
			in, err := a.tr.Object(a.ctx, ref)
			if err != nil {
				p.sink(&outcome{job: j, res: Result{Status: StatusError, Error: "cluster: fetch the task's input: " + err.Error()}})
				p.kickFlush()
				continue
			}
			j.input = in
		}
		if j.gateHold && c.Spec.MinAvailable > 0 {
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				if err := waitMemory(r, c.Spec.MinAvailable, c.Spec.GateTimeout); err != nil {
					p.sendResult(j, remote.Result{ID: j.remoteID, GateFailed: err.Error() + " on " + a.me.String()})
					return
				}
				p.q.push(j)
			}()
			continue
		}
		jobs = append(jobs, j)
	}
	if len(refuse) > 0 {
		a.release(p, ch, refuse, fmt.Sprintf("%s runs tasks with at most %s of memory", a.me, sizeString(a.cfg.MaxMemory)))
	}
	p.q.push(jobs...)
}

// release gives attempts of ch back to their pool without charge: those at
// the places is in the chunk, or all of them when is is nil.
func (a *agent) release(p *apool, ch *achunk, is []int, why string) {
	a.mu.Lock()
	var sent []uint64
	give := func(i int) {
		if ch.owns(i) {
			ch.done[i] = true
			ch.left--
			sent = append(sent, ch.jobs[i].remoteID)
		}
	}
	if is == nil {
		for i := range ch.jobs {
			give(i)
		}
	}
	for _, i := range is {
		give(i)
	}
	if len(sent) > 0 {
		if err := a.tr.SendRelease(&remote.Release{Pool: p.spec.Pool, Agent: a.me, IDs: sent, Why: why}); err != nil {
			a.logf("pool %s: release: %v", p.spec.Pool, err)
		}
	}
	if ch.left == 0 {
		a.dropLocked(p, ch)
	}
	a.mu.Unlock()
}

// dropLocked stops holding ch: its queued tasks are dropped, and results
// that come for it later are not sent.
func (a *agent) dropLocked(p *apool, ch *achunk) {
	if !ch.held {
		return
	}
	ch.held = false
	delete(p.byID, ch.id)
	delete(p.chunks, ch.run)
	ch.left = 0
	if !ch.run.isDone.Swap(true) {
		close(ch.run.done)
	}
	a.held--
	select {
	case a.room <- struct{}{}:
	default:
	}
}

// sink takes the local dispatcher's outcomes.
func (p *apool) sink(o *outcome) {
	j := o.job
	x := remote.Result{
		ID: j.remoteID, Status: uint8(o.res.Status), Output: o.res.Output, Error: o.res.Error, Log: o.res.Log,
		Start: o.res.Stats.Start.UnixNano(), End: o.res.Stats.End.UnixNano(), WorkerPID: o.res.Stats.WorkerPID,
		PeakMemory: o.res.Stats.PeakMemory, MemoryLimit: j.memLimit,
	}
	if o.death != nil {
		x.Died, x.Signal, x.ExitCode, x.Hung = true, o.death.Signal, o.death.ExitCode, o.death.Hung
	}
	if limit := p.room() - len(x.Error) - len(x.Log); len(x.Output) > limit {
		key := p.spec.Pool + "/out/" + strconv.FormatUint(x.ID, 10)
		if err := p.a.tr.PutObject(p.a.ctx, key, x.Output); err != nil {
			x.Status, x.Error = uint8(StatusError), fmt.Sprintf("cluster: the output of %d bytes is larger than a message and could not be stored as an object: %v", len(x.Output), err)
		} else {
			x.OutputRef = key
		}
		x.Output = nil
	}
	p.queueResult(j, &x) // sent when the local dispatcher says the batch is delivered
	if p.a.cfg.Observer != nil {
		st := o.res.Stats
		st.MemoryLimit = j.memLimit
		p.a.observe(Event{Kind: EventTaskEnd, Time: st.End, WorkerPID: st.WorkerPID, Index: j.index,
			Func: j.run.fn, Status: o.res.Status, Reason: o.res.Error, Stats: st})
	}
}

// sendResult queues a result for the flusher. A worker's answer comes as
// a batch of outcomes: the local dispatcher calls kickFlush after the
// last (delivered), so that they go in one message.
func (p *apool) sendResult(j *job, x remote.Result) {
	p.queueResult(j, &x)
	p.kickFlush()
}

// room is the most bytes of results a message carries: the payload
// limit, less the message's header and the list of what each worker runs.
func (p *apool) room() int {
	return p.a.tr.MaxPayload() - remote.ChunkOverhead - 10*p.a.cfg.Workers
}

// queueResult encodes x, the result of j, into the next message of
// results. It is sent even if its chunk is dropped meanwhile: the pool,
// whose record is the truth, drops what it no longer wants.
func (p *apool) queueResult(j *job, x *remote.Result) {
	size := remote.ResultSize(x)
	p.outMu.Lock()
	if p.out.Len() > 0 && p.out.Size()+size > p.room() {
		p.sealed = append(p.sealed, resultsMsg{p.out, p.outRef})
		p.out, p.outRef = remote.ResultsWriter{}, nil
	}
	p.out.Add(x)
	p.outRef = append(p.outRef, aref{run: j.run, i: j.index, start: x.IsStart()})
	p.outMu.Unlock()
}

func (p *apool) kickFlush() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// flush sends queued results, as many per message as fit: under load they
// batch themselves, and an idle agent sends each at once. A chunk stops
// being held once its last result is sent.
func (p *apool) flush() {
	a := p.a
	defer a.wg.Done()
	// The room of the last round's message, handed back to p.out and
	// p.outRef, and the room of the messages sent.
	var spare resultsMsg
	var msg []byte
	var running []uint64
	for {
		select {
		case <-p.kick:
		case <-a.ctx.Done():
			return
		}
		p.outMu.Lock()
		msgs := append(p.sealed, resultsMsg{p.out, p.outRef})
		p.sealed = nil
		p.out, p.outRef = spare.w, spare.refs
		p.outMu.Unlock()
		for _, m := range msgs {
			if m.w.Len() == 0 {
				continue
			}
			// What the workers run now goes with the results, so that
			// the pool knows it to the task if this agent dies next.
			// These results are all out of the drivers' flights.
			a.mu.Lock()
			running = p.runningLocked(running[:0])
			a.mu.Unlock()
			msg = m.w.AppendMessage(msg[:0], p.spec.Pool, &a.me, true, running)
			if err := a.tr.SendResults(p.spec.Pool, msg); err != nil {
				a.logf("pool %s: send results: %v", p.spec.Pool, err)
			}
			a.mu.Lock()
			var ch *achunk // the results of a message are mostly one chunk's
			for _, r := range m.refs {
				if r.start {
					continue // a start, not an end
				}
				if ch == nil || ch.run != r.run {
					if ch = p.chunks[r.run]; ch == nil {
						continue // dropped
					}
				}
				if ch.owns(r.i) {
					ch.done[r.i] = true
					if ch.left--; ch.left == 0 {
						a.dropLocked(p, ch)
					}
				}
			}
			a.mu.Unlock()
		}
		// The transport copied what it sent: the room of the round's
		// message is reused, once cleared of the chunks' runs.
		last := msgs[len(msgs)-1]
		clear(last.refs)
		last.w.Reset()
		spare = resultsMsg{w: last.w, refs: last.refs[:0]}
		if cap(spare.refs) > 1<<16 || cap(msg) > 4<<20 {
			spare, msg = resultsMsg{}, nil
		}
	}
}

// onTrip gives back everything the pool's chunks hold: this agent cannot
// keep workers up for it.
func (p *apool) onTrip(err error) {
	p.releaseAll("its workers cannot be kept up: " + err.Error())
}

// releaseAll gives back, without charge, every attempt the pool's chunks
// hold here.
func (p *apool) releaseAll(why string) {
	a := p.a
	a.mu.Lock()
	chunks := make([]*achunk, 0, len(p.byID))
	for _, ch := range p.byID {
		chunks = append(chunks, ch)
	}
	a.mu.Unlock()
	for _, ch := range chunks {
		a.release(p, ch, nil, why)
	}
}

// closePoolLocked forgets a pool: its chunks are dropped.
func (a *agent) closePoolLocked(p *apool) {
	if p.closed {
		return
	}
	p.closed = true
	for _, ch := range p.byID {
		a.dropLocked(p, ch)
	}
	delete(a.pools, p.spec.Pool)
}

// stopWorkers kills the pool's workers once they have started.
func (p *apool) stopWorkers() {
	<-p.ready
	if p.disp != nil {
		p.disp.close(true)
	}
}

// beat sends a heartbeat to every pool the agent knows, and stops the
// workers of pools idle for idlePool.
func (a *agent) beat() {
	defer a.wg.Done()
	t := time.NewTicker(a.cfg.Heartbeat)
	defer t.Stop()
	var seq uint64
	for {
		select {
		case <-a.ctx.Done():
			return
		case now := <-t.C:
			seq++
			a.mu.Lock()
			for _, p := range a.pools {
				if len(p.byID) == 0 && now.Sub(p.used) > idlePool {
					a.closePoolLocked(p)
					a.wg.Add(1)
					go func() { defer a.wg.Done(); p.stopWorkers() }()
					continue
				}
				a.beatLocked(p, seq)
			}
			a.mu.Unlock()
		}
	}
}

// beatLocked sends a heartbeat to p's pool. It is sent under a.mu: a
// claim registers its chunk, and a flush drops one, under the same lock.
func (a *agent) beatLocked(p *apool, seq uint64) {
	h := &remote.Heartbeat{Agent: a.me, Seq: seq, Holding: []remote.Holding{p.holdingLocked()}}
	if err := a.tr.SendHeartbeat(h); err != nil {
		a.logf("heartbeat: %v", err)
	}
}

// holdingLocked lists the chunks the pool holds here and the attempts its
// workers are running.
func (p *apool) holdingLocked() remote.Holding {
	h := remote.Holding{Pool: p.spec.Pool}
	for id := range p.byID {
		h.Chunks = append(h.Chunks, id)
	}
	h.Running = p.runningLocked(nil)
	return h
}

// runningLocked appends to ids the attempt each of the pool's workers
// runs here. Under a.mu.
func (p *apool) runningLocked(ids []uint64) []uint64 {
	select {
	case <-p.ready:
	default:
		return ids
	}
	if p.disp == nil {
		return ids
	}
	// A worker runs its flights' tasks in order: the first without a
	// result is the one it runs (or starts next, an instant from now).
	for _, d := range p.disp.drivers {
		d.mu.Lock()
		found := false
		d.pending(func(j *job) {
			if !found {
				found = true
				ids = append(ids, j.remoteID)
			}
		})
		d.mu.Unlock()
	}
	return ids
}

// shutdown gives back everything held, without charge, and stops the
// workers.
func (a *agent) shutdown() {
	a.mu.Lock()
	a.stopping = true
	pools := make([]*apool, 0, len(a.pools))
	for _, p := range a.pools {
		pools = append(pools, p)
	}
	a.mu.Unlock()
	for _, p := range pools {
		p.releaseAll(a.me.String() + " is shutting down")
		a.mu.Lock()
		a.closePoolLocked(p)
		a.mu.Unlock()
		p.stopWorkers()
	}
	a.logf("%s stopped", a.me)
}

var _ remote.AgentHandler = (*agent)(nil)
