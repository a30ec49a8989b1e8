package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/safepool/safepool/internal/remote"
)

// coordinator is a pool's side of the transport.
type coordinator struct {
	id      string
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	objects jetstream.ObjectStore
	h       remote.Handler
	opts    Options
	inbox   *nats.Subscription
	lost    *nats.Subscription

	// dial opens another connection to the same servers, named name.
	dial func(name string) (*nats.Conn, error)
	// advisories is set once the probe saw its own disconnect advisory.
	advisories atomic.Bool
	probeMu    sync.Mutex
	probeName  string
	probeDone  chan struct{}
	probed     chan struct{} // closed when the probe is over

	// results is the receive goroutine's buffer of decoded results.
	results remote.Results

	closed    chan struct{}
	closeOnce sync.Once
	onClose   func() // stops what "embedded" started, after the disconnect
	// local is the instance of the agent "embedded" runs in this process.
	local string
}

// InProcessAgent reports whether instance is the agent "embedded" runs
// beside the pool (remote.InProcessAgents).
func (c *coordinator) InProcessAgent(instance string) bool {
	return c.local != "" && instance == c.local
}

var _ remote.InProcessAgents = (*coordinator)(nil)

// openCoordinator connects a pool to the servers at urls; extra options
// (an in-process server) go to nats.go as they are.
func openCoordinator(ctx context.Context, urls string, o Options, h remote.Handler, extra ...nats.Option) (*coordinator, error) {
	c := &coordinator{id: nuid.Next(), h: h, opts: o, closed: make(chan struct{}), probed: make(chan struct{})}
	c.dial = func(name string) (*nats.Conn, error) { return connect(urls, &o, name, extra...) }
	nc, err := connect(urls, &o, poolName, append(extra, nats.ReconnectHandler(func(*nats.Conn) { h.Reconnected() }))...)
	if err != nil {
		return nil, err
	}
	c.nc = nc
	if c.js, c.stream, c.objects, err = queue(ctx, nc); err != nil {
		nc.Close()
		return nil, err
	}
	if err := c.subscribe(); err != nil {
		nc.Close()
		return nil, err
	}
	go c.probeAdvisories()
	return c, nil
}

// subscribe takes every message agents send to this pool on one
// subscription, which nats.go serves from one goroutine in order, and
// the server's disconnect advisories on another.
func (c *coordinator) subscribe() error {
	sub, err := c.nc.Subscribe(toPoolAll(c.id), c.receive)
	if err != nil {
		return fmt.Errorf("cluster: subscribe: %w", err)
	}
	// A subscription that falls behind drops messages past its limits;
	// the pool's messages must not be dropped.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return fmt.Errorf("cluster: subscribe: %w", err)
	}
	c.inbox = sub
	if c.opts.noAdvisories {
		return c.nc.Flush()
	}
	if c.lost, err = c.nc.Subscribe(disconnectAdvisories, c.disconnected); err != nil {
		return fmt.Errorf("cluster: subscribe to disconnect advisories: %w", err)
	}
	return c.nc.Flush()
}

// receive hands one agent message to the pool.
func (c *coordinator) receive(m *nats.Msg) {
	kind := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	var err error
	switch kind {
	case toClaim:
		var cl *remote.Claim
		if cl, err = remote.UnmarshalClaim(m.Data); err == nil {
			answer := []byte{0}
			if c.h.Claim(cl) {
				answer[0] = 1
			}
			err = m.Respond(answer)
		}
	case toReady:
		var r *remote.Ready
		if r, err = remote.UnmarshalReady(m.Data); err == nil {
			c.h.Ready(r)
		}
	case toResults:
		// nats.go gives each message a buffer of its own: the outputs
		// may alias it. The handler keeps no Result past its call, so
		// the one receive goroutine reuses their room.
		if err = remote.DecodeResults(m.Data, &c.results); err == nil {
			c.h.Results(&c.results)
		}
	case toHB:
		var hb *remote.Heartbeat
		if hb, err = remote.UnmarshalHeartbeat(m.Data); err == nil {
			c.h.Heartbeat(hb)
		}
	case toRelease:
		var r *remote.Release
		if r, err = remote.UnmarshalRelease(m.Data); err == nil {
			c.h.Release(r)
		}
	default:
		err = fmt.Errorf("unknown kind %q", kind)
	}
	if err != nil {
		c.opts.logf("pool %s: dropped a message on %s: %v", c.id, m.Subject, err)
	}
}

func (c *coordinator) Pool() string { return c.id }

func (c *coordinator) MaxPayload() int { return maxPayload(c.nc) }

func (c *coordinator) PutObject(ctx context.Context, key string, data []byte) error {
	return putObject(ctx, c.objects, key, data)
}

func (c *coordinator) GetObject(ctx context.Context, key string) ([]byte, error) {
	return getObject(ctx, c.objects, key)
}

func (c *coordinator) DeleteObject(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := c.objects.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		c.opts.logf("pool %s: delete object %s: %v", c.id, key, err)
	}
}

func (c *coordinator) Prepare(spec *remote.Spec) error {
	return c.publish(prepareSubject, remote.MarshalSpec(spec))
}

func (c *coordinator) Stop(s *remote.Stop) error {
	return c.publish(stopSubject, remote.MarshalStop(s))
}

func (c *coordinator) publish(subject string, data []byte) error {
	if err := checkSize(len(data), c.MaxPayload()); err != nil {
		return err
	}
	if err := c.nc.Publish(subject, data); err != nil {
		return fmt.Errorf("cluster: publish on %s: %w", subject, err)
	}
	return nil
}

// Send publishes a chunk and waits for the stream to store it. Publishing
// with an acknowledgement costs one round trip per chunk; chunks carry many
// tasks each, so this is small beside running them.
func (c *coordinator) Send(ctx context.Context, id uint64, data []byte) error {
	if err := checkSize(len(data), c.MaxPayload()); err != nil {
		return err
	}
	if _, err := c.js.Publish(ctx, taskSubject(c.id), data); err != nil {
		return fmt.Errorf("cluster: send chunk %d: %w", id, err)
	}
	return nil
}

// Close tells the agents the pool is gone, drops its chunks still on the
// queue and disconnects. It is safe to call more than once.
func (c *coordinator) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		err = c.publish(stopSubject, remote.MarshalStop(&remote.Stop{Pool: c.id, All: true}))
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		if perr := c.stream.Purge(ctx, jetstream.WithPurgeSubject(taskSubject(c.id))); perr != nil && c.nc.IsConnected() {
			err = errors.Join(err, fmt.Errorf("cluster: drop the pool's chunks: %w", perr))
		}
		if ferr := c.nc.FlushWithContext(ctx); ferr != nil && err == nil && c.nc.IsConnected() {
			err = fmt.Errorf("cluster: close: %w", ferr)
		}
		c.nc.Close()
		if c.onClose != nil {
			c.onClose()
		}
	})
	return err
}

// ErrTooLarge is the error of a message larger than the transport carries.
var ErrTooLarge = errors.New("cluster: message larger than the servers' max_payload")

func checkSize(n, limit int) error {
	if n > limit {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, n, limit)
	}
	return nil
}
