// Package remotetest is an in-memory cluster transport for tests: a bus
// that carries the same encoded messages as a real transport, delivers
// each pool's messages in order on one goroutine, as a NATS subscription
// does, and lets a test cut an agent off, lose its messages, or deliver
// them late.
package remotetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/safepool/safepool/internal/remote"
)

// Bus is one in-memory cluster.
type Bus struct {
	mu      sync.Mutex
	cond    *sync.Cond
	pools   map[string]*poolSide
	agents  map[string]*Agent // by name
	queue   [][]byte          // encoded chunks
	taken   map[string][]byte // chunks handed out and not yet claimed, by pool/chunk
	objects map[string][]byte
	nextID  int
	closed  bool
	done    chan struct{}
	// MaxPayload is the largest message; default 1 MiB.
	MaxPayload int
	// DeliverTwice, when set, puts every chunk on the queue twice, as a
	// work queue delivers again a chunk whose claim came after its ack
	// wait.
	DeliverTwice bool
	// Damage, when set, changes the bytes of each object stored.
	Damage func(key string, data []byte) []byte
	// inProcess holds the agent instances pools are told run in their
	// own process (remote.InProcessAgents).
	inProcess map[string]bool
}

// InProcess tells the bus's pools that the agent instance runs in their
// own process, as "embedded" does: they do not presume it lost when it is
// silent.
func (b *Bus) InProcess(instance string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inProcess == nil {
		b.inProcess = map[string]bool{}
	}
	b.inProcess[instance] = true
}

// New makes an empty bus.
func New() *Bus {
	b := &Bus{pools: map[string]*poolSide{}, agents: map[string]*Agent{}, objects: map[string][]byte{}, taken: map[string][]byte{}, MaxPayload: 1 << 20, done: make(chan struct{})}
	b.cond = sync.NewCond(&b.mu)
	return b
}

type poolSide struct {
	b     *Bus
	id    string
	h     remote.Handler
	inbox chan func()
	done  chan struct{}
	once  sync.Once
}

// Open is a remote.Opener over the bus.
func (b *Bus) Open(ctx context.Context, cfg remote.OpenConfig, h remote.Handler) (remote.Coordinator, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextID++
	p := &poolSide{b: b, id: "pool" + strconv.Itoa(b.nextID), h: h, inbox: make(chan func(), 1<<16), done: make(chan struct{})}
	b.pools[p.id] = p
	go func() {
		for {
			select {
			case f := <-p.inbox:
				f()
			case <-p.done:
				return
			}
		}
	}()
	return p, nil
}

// deliver runs f on the pool's goroutine, after what came before it.
func (b *Bus) deliver(pool string, f func(remote.Handler)) bool {
	b.mu.Lock()
	p := b.pools[pool]
	b.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case p.inbox <- func() { f(p.h) }:
		return true
	case <-p.done:
		return false
	}
}

func (p *poolSide) Pool() string { return p.id }
func (p *poolSide) PutObject(_ context.Context, key string, data []byte) error {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	data = append([]byte(nil), data...)
	if p.b.Damage != nil {
		data = p.b.Damage(key, data)
	}
	p.b.objects[key] = data
	return nil
}
func (p *poolSide) GetObject(_ context.Context, key string) ([]byte, error) {
	return p.b.object(key)
}
func (p *poolSide) DeleteObject(key string) {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	delete(p.b.objects, key)
}
func (p *poolSide) Prepare(s *remote.Spec) error {
	msg := remote.MarshalSpec(s)
	for _, a := range p.b.liveAgents() {
		a.control(func(h remote.AgentHandler) {
			s, err := remote.UnmarshalSpec(msg)
			if err == nil {
				h.Prepare(s)
			}
		})
	}
	return nil
}
func (p *poolSide) Send(_ context.Context, _ uint64, data []byte) error {
	msg := append([]byte(nil), data...)
	if len(msg) > p.b.MaxPayload {
		return fmt.Errorf("remotetest: chunk of %d bytes exceeds the payload limit of %d", len(msg), p.b.MaxPayload)
	}
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	if p.b.closed {
		return errors.New("remotetest: closed")
	}
	p.b.queue = append(p.b.queue, msg)
	if p.b.DeliverTwice {
		p.b.queue = append(p.b.queue, msg)
	}
	p.b.cond.Broadcast()
	return nil
}
func (p *poolSide) Stop(s *remote.Stop) error {
	msg := remote.MarshalStop(s)
	for _, a := range p.b.liveAgents() {
		a.control(func(h remote.AgentHandler) {
			s, err := remote.UnmarshalStop(msg)
			if err == nil {
				h.Stop(s)
			}
		})
	}
	return nil
}
func (p *poolSide) MaxPayload() int { return p.b.MaxPayload }
func (p *poolSide) InProcessAgent(instance string) bool {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	return p.b.inProcess[instance]
}
func (p *poolSide) Close() error {
	p.once.Do(func() {
		p.b.mu.Lock()
		delete(p.b.pools, p.id)
		p.b.mu.Unlock()
		close(p.done)
	})
	return nil
}

func (b *Bus) object(key string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.objects[key]
	if !ok {
		return nil, fmt.Errorf("remotetest: no object %q", key)
	}
	if len(key) == 64 {
		sum := sha256.Sum256(v)
		if got := hex.EncodeToString(sum[:]); got != key {
			return nil, fmt.Errorf("module object %s is damaged: its SHA-256 is %s", key, got)
		}
	}
	return append([]byte(nil), v...), nil
}

// Corrupt replaces an object's bytes.
func (b *Bus) Corrupt(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v, ok := b.objects[key]; ok && len(v) > 0 {
		v = append([]byte(nil), v...)
		v[len(v)/2] ^= 0xff
		b.objects[key] = v
	}
}

// Objects counts the objects stored.
func (b *Bus) Objects() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.objects)
}

// Close wakes agents waiting for work, and ends the bus's goroutines.
func (b *Bus) Close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
	b.cond.Broadcast()
	b.mu.Unlock()
}

func (b *Bus) liveAgents() []*Agent {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*Agent
	for _, a := range b.agents {
		if !a.cut {
			out = append(out, a)
		}
	}
	return out
}

// Agent is an agent's connection to the bus.
type Agent struct {
	b        *Bus
	name     string
	instance string
	ctl      chan func()
	h        remote.AgentHandler
	// Under b.mu:
	cut  bool // disconnected: sends are dropped (or held, with late)
	late bool
	held []func()
	// Lose, when set, drops results messages for which it returns true.
	Lose func(*remote.Results) bool
}

// NewAgent connects an agent named name.
func (b *Bus) NewAgent(name string) *Agent {
	a := &Agent{b: b, name: name, ctl: make(chan func(), 1024)}
	b.mu.Lock()
	b.agents[name] = a
	b.mu.Unlock()
	return a
}

// SetInstance names the agent's connection after instance, as a real
// transport does, before it sends anything: Cut's advisory names it.
func (a *Agent) SetInstance(instance string) { a.setInstance(instance) }

func (a *Agent) setInstance(id string) {
	a.b.mu.Lock()
	a.instance = id
	a.b.mu.Unlock()
}

// Subscribe is what remote.RunAgent's subscribe does.
func (a *Agent) Subscribe(h remote.AgentHandler) error {
	a.b.mu.Lock()
	a.h = h
	a.b.mu.Unlock()
	go func() {
		for {
			select {
			case f := <-a.ctl:
				f()
			case <-a.b.done:
				return
			}
		}
	}()
	return nil
}

func (a *Agent) control(f func(remote.AgentHandler)) {
	a.b.mu.Lock()
	h := a.h
	a.b.mu.Unlock()
	if h == nil {
		return
	}
	select {
	case a.ctl <- func() { f(h) }:
	default:
	}
}

// Cut disconnects the agent as a SIGSTOP or a network partition does: it
// goes on, but nothing it sends arrives. With late, what it sends is held
// and delivered by Heal. With advisory, its pools hear at once that it
// disconnected, as from the server's advisory; without, only its silence
// tells.
func (a *Agent) Cut(late, advisory bool) {
	a.b.mu.Lock()
	a.cut, a.late = true, late
	inst := a.instance
	pools := make([]string, 0, len(a.b.pools))
	for id := range a.b.pools {
		pools = append(pools, id)
	}
	a.b.mu.Unlock()
	if advisory && inst != "" {
		for _, id := range pools {
			a.b.deliver(id, func(h remote.Handler) { h.AgentLost(inst, "disconnected") })
		}
	}
}

// Heal reconnects the agent and delivers what it sent while cut, when
// Cut was told to hold it.
func (a *Agent) Heal() {
	a.b.mu.Lock()
	a.cut = false
	held := a.held
	a.held = nil
	a.b.cond.Broadcast()
	a.b.mu.Unlock()
	for _, f := range held {
		f()
	}
}

// send delivers f to pool unless the agent is cut.
func (a *Agent) send(pool string, f func(remote.Handler)) error {
	a.b.mu.Lock()
	if a.cut {
		if a.late {
			a.held = append(a.held, func() { a.b.deliver(pool, f) })
		}
		a.b.mu.Unlock()
		return nil
	}
	a.b.mu.Unlock()
	if !a.b.deliver(pool, f) {
		return fmt.Errorf("remotetest: pool %s is gone", pool)
	}
	return nil
}

func (a *Agent) Next(ctx context.Context) (*remote.Chunk, error) {
	stop := context.AfterFunc(ctx, func() {
		a.b.mu.Lock()
		a.b.cond.Broadcast()
		a.b.mu.Unlock()
	})
	defer stop()
	a.b.mu.Lock()
	defer a.b.mu.Unlock()
	for len(a.b.queue) == 0 || a.cut {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if a.b.closed {
			return nil, errors.New("remotetest: closed")
		}
		a.b.cond.Wait()
	}
	msg := a.b.queue[0]
	a.b.queue = a.b.queue[1:]
	// Agents read the tasks from the message itself, as on NATS; a
	// message is never changed once queued.
	c, err := remote.UnmarshalChunkShared(msg)
	if err == nil {
		a.b.taken[c.Spec.Pool+"/"+strconv.FormatUint(c.ID, 10)] = msg
	}
	return c, err
}

// settle acks a chunk handed out, or, when it was not claimed for want of
// an answer, puts it back as a work queue redelivers it.
func (b *Bus) settle(c *remote.Claim, redeliver bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	key := c.Pool + "/" + strconv.FormatUint(c.Chunk, 10)
	if msg, ok := b.taken[key]; ok {
		delete(b.taken, key)
		if redeliver {
			b.queue = append(b.queue, msg)
			b.cond.Broadcast()
		}
	}
}

func (a *Agent) Claim(ctx context.Context, c *remote.Claim) (bool, error) {
	a.setInstance(c.Agent.Instance)
	msg := remote.MarshalClaim(c)
	reply := make(chan bool, 1)
	a.b.mu.Lock()
	cut := a.cut
	a.b.mu.Unlock()
	if cut {
		a.b.settle(c, true)
		return false, errors.New("remotetest: disconnected")
	}
	if !a.b.deliver(c.Pool, func(h remote.Handler) {
		c, err := remote.UnmarshalClaim(msg)
		reply <- err == nil && h.Claim(c)
	}) {
		a.b.settle(c, false)
		return false, nil
	}
	select {
	case ok := <-reply:
		a.b.settle(c, false)
		return ok, nil
	case <-ctx.Done():
		a.b.settle(c, true)
		return false, ctx.Err()
	}
}

func (a *Agent) Object(_ context.Context, key string) ([]byte, error) { return a.b.object(key) }
func (a *Agent) PutObject(_ context.Context, key string, data []byte) error {
	a.b.mu.Lock()
	defer a.b.mu.Unlock()
	a.b.objects[key] = append([]byte(nil), data...)
	return nil
}
func (a *Agent) SendReady(r *remote.Ready) error {
	a.setInstance(r.Agent.Instance)
	msg := remote.MarshalReady(r)
	return a.send(r.Pool, func(h remote.Handler) {
		if r, err := remote.UnmarshalReady(msg); err == nil {
			h.Ready(r)
		}
	})
}
func (a *Agent) SendResults(pool string, msg []byte) error {
	if len(msg) > a.b.MaxPayload {
		return fmt.Errorf("remotetest: results of %d bytes exceed the payload limit", len(msg))
	}
	// The message is delivered later, perhaps: a copy, since the agent
	// reuses its room.
	msg = append([]byte(nil), msg...)
	if a.Lose != nil {
		r, err := remote.UnmarshalResults(msg)
		if err != nil {
			return fmt.Errorf("remotetest: results: %w", err)
		}
		if a.Lose(r) {
			return nil
		}
	}
	return a.send(pool, func(h remote.Handler) {
		if r, err := remote.UnmarshalResults(msg); err == nil {
			h.Results(r)
		}
	})
}
func (a *Agent) SendHeartbeat(hb *remote.Heartbeat) error {
	a.setInstance(hb.Agent.Instance)
	msg := remote.MarshalHeartbeat(hb)
	pool := ""
	if len(hb.Holding) > 0 {
		pool = hb.Holding[0].Pool
	}
	return a.send(pool, func(h remote.Handler) {
		if hb, err := remote.UnmarshalHeartbeat(msg); err == nil {
			h.Heartbeat(hb)
		}
	})
}
func (a *Agent) SendRelease(r *remote.Release) error {
	msg := remote.MarshalRelease(r)
	return a.send(r.Pool, func(h remote.Handler) {
		if r, err := remote.UnmarshalRelease(msg); err == nil {
			h.Release(r)
		}
	})
}
func (a *Agent) MaxPayload() int { return a.b.MaxPayload }

var _ remote.Coordinator = (*poolSide)(nil)
var _ remote.AgentTransport = (*Agent)(nil)

// Registry makes buses reachable as cluster targets PREFIX+NAME, so that a
// pool's Config.Cluster can name one.
type Registry struct {
	prefix string
	mu     sync.Mutex
	buses  map[string]*Bus
}

// Register registers a transport for targets that start with prefix, each
// naming a bus of the registry.
func Register(prefix string) *Registry {
	r := &Registry{prefix: prefix, buses: map[string]*Bus{}}
	remote.Register(func(ctx context.Context, cfg remote.OpenConfig, h remote.Handler) (remote.Coordinator, error) {
		r.mu.Lock()
		b := r.buses[cfg.Target[len(prefix):]]
		r.mu.Unlock()
		if b == nil {
			return nil, fmt.Errorf("remotetest: no bus %q", cfg.Target)
		}
		return b.Open(ctx, cfg, h)
	}, prefix)
	return r
}

// New makes a bus and returns it with the target that names it.
func (r *Registry) New(name string) (*Bus, string) {
	b := New()
	r.mu.Lock()
	r.buses[name] = b
	r.mu.Unlock()
	return b, r.prefix + name
}
