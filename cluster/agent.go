package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/safepool/safepool/internal/remote"
)

// claimTimeout bounds the wait for a pool's answer to a claim: a pool that
// does not answer is gone, and its chunk is dropped.
const claimTimeout = 2 * time.Second

// buffered is how many chunks an agent's pull keeps ahead of Next: enough
// that fetching is batched, few enough that chunks do not wait long
// behind a busy agent while others are idle.
const buffered = 8

// pullExpiry is how long one pull request waits on the server. A pull
// whose server or consumer leader went away is noticed from missing
// heartbeats (half of it) and made again, so this bounds how long an
// agent stays deaf after a server of the cluster stops.
const pullExpiry = 5 * time.Second

// agent is an agent's side of the transport. Its methods are safe for
// concurrent use.
type agent struct {
	nc       *nats.Conn
	instance string
	logf     func(format string, args ...any)

	setupMu sync.Mutex // held while setting up; guards the fields below
	js      jetstream.JetStream
	stream  jetstream.Stream
	objects jetstream.ObjectStore
	msgs    jetstream.MessagesContext

	mu      sync.Mutex
	pending map[chunkKey]delivery // chunks Next returned, waiting for their claim
	pools   map[string]bool       // pools to send heartbeats to
	warned  bool                  // said that messages name another instance
}

type chunkKey struct {
	pool  string
	chunk uint64
}

type delivery struct {
	msg jetstream.Msg
	at  time.Time
}

// newAgent makes the transport of an agent whose connection nc is named
// after instance.
func newAgent(nc *nats.Conn, instance string, logf func(string, ...any)) *agent {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &agent{
		nc: nc, instance: instance, logf: logf,
		pending: map[chunkKey]delivery{}, pools: map[string]bool{},
	}
}

// setup opens the stream, the consumer and the object bucket, once.
func (a *agent) setup(ctx context.Context) (jetstream.MessagesContext, jetstream.ObjectStore, error) {
	a.setupMu.Lock()
	defer a.setupMu.Unlock()
	if a.objects == nil {
		js, st, obj, err := queue(ctx, a.nc)
		if err != nil {
			return nil, nil, err
		}
		a.js, a.stream, a.objects = js, st, obj
	}
	if a.msgs == nil {
		c, err := consumer(ctx, a.stream)
		if err != nil {
			a.objects = nil // the stream may be gone too: open it again
			return nil, nil, fmt.Errorf("cluster: the agents' consumer: %w", err)
		}
		if a.msgs, err = c.Messages(jetstream.PullMaxMessages(buffered), jetstream.PullExpiry(pullExpiry)); err != nil {
			return nil, nil, fmt.Errorf("cluster: pull chunks: %w", err)
		}
	}
	return a.msgs, a.objects, nil
}

// reset drops the pull after it failed, so that the next call sets it up
// again (a server restart loses a memory stream and its consumer).
func (a *agent) reset(msgs jetstream.MessagesContext) {
	a.setupMu.Lock()
	defer a.setupMu.Unlock()
	if a.msgs == msgs {
		a.msgs.Stop()
		a.msgs, a.objects = nil, nil
	}
}

// Next waits for the next chunk. A message that is not a chunk is logged
// and terminated, so that no agent gets it again.
func (a *agent) Next(ctx context.Context) (*remote.Chunk, error) {
	wait := 100 * time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if a.nc.IsClosed() {
			return nil, fmt.Errorf("cluster: wait for chunks: %w", nats.ErrConnectionClosed)
		}
		msgs, _, err := a.setup(ctx)
		if err == nil {
			var m jetstream.Msg
			if m, err = msgs.Next(jetstream.NextContext(ctx)); err == nil {
				if c := a.decode(m); c != nil {
					return c, nil
				}
				wait = 100 * time.Millisecond
				continue
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			a.reset(msgs)
		}
		a.logf("cluster: waiting for chunks: %v", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// decode reads a delivered chunk and keeps the message for its claim.
func (a *agent) decode(m jetstream.Msg) *remote.Chunk {
	// nats.go gives each message a buffer of its own: the inputs may
	// alias it.
	c, err := remote.UnmarshalChunkShared(m.Data())
	if err != nil {
		a.logf("cluster: dropped a message on %s that is not a chunk: %v", m.Subject(), err)
		if err := m.Term(); err != nil {
			a.logf("cluster: drop the message: %v", err)
		}
		return nil
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	// A chunk never claimed (its agent could not take it) is given to
	// another agent after ackWait: forget its delivery by then.
	for k, d := range a.pending {
		if now.Sub(d.at) > 2*ackWait {
			delete(a.pending, k)
		}
	}
	a.pending[chunkKey{c.Spec.Pool, c.ID}] = delivery{m, now}
	return c
}

// Claim asks the chunk's pool for it and then acknowledges the delivery,
// or terminates it when the pool said no or did not answer: the pool's
// answer is the truth, and a work-queue stream deletes a message on any
// acknowledgement.
func (a *agent) Claim(ctx context.Context, cl *remote.Claim) (bool, error) {
	a.checkInstance(&cl.Agent)
	key := chunkKey{cl.Pool, cl.Chunk}
	a.mu.Lock()
	d, ok := a.pending[key]
	delete(a.pending, key)
	a.mu.Unlock()

	rctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	resp, err := a.nc.RequestWithContext(rctx, toPool(cl.Pool, toClaim), remote.MarshalClaim(cl))
	granted := false
	switch {
	case err == nil:
		granted = len(resp.Data) == 1 && resp.Data[0] == 1
		a.addPool(cl.Pool)
	case ctx.Err() != nil:
		// The agent stops: the delivery goes to another agent after
		// ackWait.
		return false, ctx.Err()
	case errors.Is(err, nats.ErrNoResponders) && ok && gone(d.msg):
		a.logf("cluster: pool %s is gone (%v): its chunk %d is dropped", cl.Pool, err, cl.Chunk)
		a.dropPool(cl.Pool)
	case errors.Is(err, nats.ErrNoResponders):
		// Nobody listens for the pool's claims: it is gone, or its
		// connection is moving to another server. The chunk comes back
		// a second later; a pool silent for goneAfter deliveries is gone.
		if ok {
			if nerr := d.msg.NakWithDelay(time.Second); nerr != nil {
				a.logf("cluster: return chunk %d of pool %s to the work queue: %v", cl.Chunk, cl.Pool, nerr)
			}
		}
		return false, fmt.Errorf("cluster: claim chunk %d of pool %s: %w", cl.Chunk, cl.Pool, err)
	default:
		// No answer in time (a pool busy or a network slow), or another
		// failure: the chunk is not dropped, for the pool may still want
		// it; the work queue delivers it again, to this agent or another,
		// and the pool grants it once whatever happens.
		if ok {
			if nerr := d.msg.Nak(); nerr != nil {
				a.logf("cluster: return chunk %d of pool %s to the work queue: %v", cl.Chunk, cl.Pool, nerr)
			}
		}
		return false, fmt.Errorf("cluster: claim chunk %d of pool %s: %w", cl.Chunk, cl.Pool, err)
	}
	if ok {
		// A granted chunk's acknowledgement is confirmed (one round trip,
		// tens of microseconds), so that the stream has let go of it before
		// it runs.
		settle := d.msg.Term
		if granted {
			settle = func() error { return d.msg.DoubleAck(rctx) }
		}
		if err := settle(); err != nil {
			a.logf("cluster: acknowledge chunk %d of pool %s: %v", cl.Chunk, cl.Pool, err)
		}
	}
	return granted, nil
}

func (a *agent) Object(ctx context.Context, key string) ([]byte, error) {
	_, obj, err := a.setup(ctx)
	if err != nil {
		return nil, err
	}
	return getObject(ctx, obj, key)
}

func (a *agent) PutObject(ctx context.Context, key string, data []byte) error {
	_, obj, err := a.setup(ctx)
	if err != nil {
		return err
	}
	return putObject(ctx, obj, key, data)
}

func (a *agent) MaxPayload() int { return maxPayload(a.nc) }

func (a *agent) SendReady(r *remote.Ready) error {
	a.checkInstance(&r.Agent)
	a.addPool(r.Pool)
	return a.send(r.Pool, toReady, remote.MarshalReady(r))
}

// SendResults publishes msg, which Publish copies into the connection's
// buffer before it returns: the caller may reuse msg's room.
func (a *agent) SendResults(pool string, msg []byte) error {
	return a.send(pool, toResults, msg)
}

func (a *agent) SendRelease(r *remote.Release) error {
	a.checkInstance(&r.Agent)
	return a.send(r.Pool, toRelease, remote.MarshalRelease(r))
}

// SendHeartbeat sends each pool the agent works for a heartbeat that
// lists what it holds of that pool only (possibly nothing).
func (a *agent) SendHeartbeat(h *remote.Heartbeat) error {
	a.checkInstance(&h.Agent)
	byPool := map[string]remote.Holding{}
	for _, x := range h.Holding {
		byPool[x.Pool] = x
	}
	a.mu.Lock()
	for p := range byPool {
		a.pools[p] = true
	}
	pools := make([]string, 0, len(a.pools))
	for p := range a.pools {
		pools = append(pools, p)
	}
	a.mu.Unlock()

	var errs []error
	for _, p := range pools {
		one := remote.Heartbeat{Agent: h.Agent, Seq: h.Seq}
		if x, ok := byPool[p]; ok {
			one.Holding = []remote.Holding{x}
		}
		errs = append(errs, a.send(p, toHB, remote.MarshalHeartbeat(&one)))
	}
	return errors.Join(errs...)
}

// send publishes on core NATS: one connection's messages reach a
// subscriber in the order they were published.
func (a *agent) send(pool, kind string, data []byte) error {
	if err := checkSize(len(data), a.MaxPayload()); err != nil {
		return err
	}
	if err := a.nc.Publish(toPool(pool, kind), data); err != nil {
		return fmt.Errorf("cluster: send %s to pool %s: %w", kind, pool, err)
	}
	return nil
}

func (a *agent) addPool(pool string) {
	a.mu.Lock()
	a.pools[pool] = true
	a.mu.Unlock()
}

func (a *agent) dropPool(pool string) {
	a.mu.Lock()
	delete(a.pools, pool)
	a.mu.Unlock()
}

// checkInstance says once when the agent's messages name an instance
// other than its connection's: pools would not see that agent go.
func (a *agent) checkInstance(ag *remote.Agent) {
	if ag.Instance == a.instance {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.warned {
		a.warned = true
		a.logf("cluster: warning: the agent's messages name instance %q but its connection is named after %q; pools will see it go from missing heartbeats only", ag.Instance, a.instance)
	}
}

// subscribe delivers the pools' control messages to h, in order, from
// one goroutine.
func (a *agent) subscribe(h remote.AgentHandler) error {
	sub, err := a.nc.Subscribe(controlSubject, func(m *nats.Msg) {
		switch m.Subject {
		case prepareSubject:
			s, err := remote.UnmarshalSpec(m.Data)
			if err != nil {
				a.logf("cluster: dropped a prepare: %v", err)
				return
			}
			a.addPool(s.Pool)
			h.Prepare(s)
		case stopSubject:
			s, err := remote.UnmarshalStop(m.Data)
			if err != nil {
				a.logf("cluster: dropped a stop: %v", err)
				return
			}
			h.Stop(s)
			if s.All {
				a.dropPool(s.Pool)
			}
		}
	})
	if err != nil {
		return fmt.Errorf("cluster: subscribe to the pools' control messages: %w", err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return fmt.Errorf("cluster: subscribe: %w", err)
	}
	return a.nc.Flush()
}

// close stops pulling chunks. The connection is the caller's.
func (a *agent) close() {
	a.setupMu.Lock()
	defer a.setupMu.Unlock()
	if a.msgs != nil {
		a.msgs.Stop()
		a.msgs = nil
	}
}

// goneAfter is how many deliveries of a chunk may find nobody listening
// for its pool's claims (a second apart) before the pool is taken as gone.
const goneAfter = 30

// gone reports whether msg has been delivered goneAfter times.
func gone(msg jetstream.Msg) bool {
	md, err := msg.Metadata()
	return err != nil || md.NumDelivered >= goneAfter
}
