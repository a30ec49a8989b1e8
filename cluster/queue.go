package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Subjects. Work goes through one JetStream work-queue stream; everything
// else is core NATS. Every message an agent sends to a pool goes under the
// pool's one prefix, read by one subscription in order, because the pool
// relies on one agent's messages arriving in the order it sent them (a
// heartbeat that no longer lists a chunk comes after that chunk's results).
const (
	streamName     = "SAFEPOOL_TASKS"
	consumerName   = "safepool-agents"
	bucketName     = "safepool-objects"
	taskSubjects   = "safepool.tasks.>"
	prepareSubject = "safepool.ctl.prepare"
	stopSubject    = "safepool.ctl.stop"
	controlSubject = "safepool.ctl.>"
	agentPrefix    = "safepool-agent/"
	poolName       = "safepool-pool"
)

// The kinds of message an agent sends to a pool.
const (
	toClaim   = "claim"
	toReady   = "ready"
	toResults = "results"
	toHB      = "hb"
	toRelease = "release"
)

func taskSubject(pool string) string       { return "safepool.tasks." + pool }
func toPool(pool, kind string) string      { return "safepool.to." + pool + "." + kind }
func toPoolAll(pool string) string         { return "safepool.to." + pool + ".>" }
func agentConnName(instance string) string { return agentPrefix + instance }

// ackWait is how long a delivered chunk waits for its claim before the
// stream gives it to another agent. Chunks are acknowledged as soon as
// their pool answers the claim, so this covers only an agent that died
// between fetching and claiming, or kept a chunk in its buffer while busy.
const ackWait = 5 * time.Second

// headroom is what a message's headers and subject may add to its payload.
const headroom = 4 << 10

// maxPayload is the largest payload nc carries.
func maxPayload(nc *nats.Conn) int {
	return max(int(nc.MaxPayload())-headroom, 1<<10)
}

// replicas is how many copies of the stream and the objects a cluster
// keeps: one per server, up to three.
func replicas(nc *nats.Conn) int {
	if nc.ConnectedClusterName() == "" {
		return 1
	}
	seen := map[string]bool{}
	for _, s := range nc.Servers() {
		seen[s] = true
	}
	return max(1, min(3, len(seen)))
}

// setupTimeout bounds the wait for JetStream to become available: a
// cluster elects its meta leader in 5–10 s.
const setupTimeout = 30 * time.Second

// queue opens the work-queue stream, the agents' consumer and the object
// bucket, creating what is missing. It waits for JetStream to be ready.
func queue(ctx context.Context, nc *nats.Conn) (jetstream.JetStream, jetstream.Stream, jetstream.ObjectStore, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cluster: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	r := replicas(nc)
	var st jetstream.Stream
	var obj jetstream.ObjectStore
	err = retry(ctx, func(ctx context.Context) error {
		var err error
		if st, err = openStream(ctx, js, r); err != nil {
			return err
		}
		obj, err = openBucket(ctx, js, r)
		return err
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cluster: JetStream on %s: %w", redact(nc.ConnectedUrl()), err)
	}
	return js, st, obj, nil
}

func openStream(ctx context.Context, js jetstream.JetStream, r int) (jetstream.Stream, error) {
	st, err := js.Stream(ctx, streamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        streamName,
			Description: "safepool: chunks of tasks waiting for an agent",
			Subjects:    []string{taskSubjects},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.MemoryStorage,
			Replicas:    r,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			st, err = js.Stream(ctx, streamName)
		}
	}
	return st, err
}

// consumer opens the agents' one shared consumer: a work-queue stream
// refuses consumers that overlap.
func consumer(ctx context.Context, st jetstream.Stream) (jetstream.Consumer, error) {
	c, err := st.Consumer(ctx, consumerName)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		c, err = st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       consumerName,
			Description:   "safepool: the agents",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       ackWait,
			MaxAckPending: 100_000,
			MaxDeliver:    -1,
		})
	}
	return c, err
}

func openBucket(ctx context.Context, js jetstream.JetStream, r int) (jetstream.ObjectStore, error) {
	obj, err := js.ObjectStore(ctx, bucketName)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obj, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      bucketName,
			Description: "safepool: modules by SHA-256, large inputs and outputs",
			Replicas:    r,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			obj, err = js.ObjectStore(ctx, bucketName)
		}
	}
	return obj, err
}

// retry calls f until it succeeds, ctx is done or the error is one that
// waiting cannot fix. Each call gets a few seconds: a request made before
// a cluster has its meta leader gets no answer at all.
func retry(ctx context.Context, f func(context.Context) error) error {
	wait := 50 * time.Millisecond
	var last error
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := f(actx)
		cancel()
		if err == nil || permanent(err) {
			return err
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (still failing after %s)", last, setupTimeout)
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

func permanent(err error) bool {
	return errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		strings.Contains(err.Error(), "permissions violation")
}
