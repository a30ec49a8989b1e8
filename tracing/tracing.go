// Package tracing makes OpenTelemetry spans of a pool's work: one span per
// attempt of a task, from the worker's start of the task to its end, with
// its status, its worker and, on a cluster, its agent and host. An attempt
// that failed ends its span with an error status and the pool's reason
// ("worker killed by SIGKILL while running the task"), and the span of
// the attempt that retries it links to it.
//
// It is a package of its own so that programs that do not trace do not
// link OpenTelemetry. A Tracer watches a pool as its Config.Observer:
//
//	tr := tracing.New(tp) // nil: otel.GetTracerProvider()
//	cfg.Observer = tr.Observe
//	p, err := pool.New(ctx, cfg)
//	...
//	ctx, span := tracer.Start(ctx, "resize photos")
//	results, err := p.Map(ctx, "resize", inputs)
//	span.End()
//
// Each attempt's span is a child of the span in the context its map was
// called with (pool.Event.Context), so that a map's attempts form one
// trace under the caller's span; a map called with no span in its context
// makes each attempt a trace of its own. On a cluster, set it on the pool
// that runs the maps: the spans are made there, where each attempt's end
// comes back from its agent with the agent's and the host's names.
//
// A span costs what the tracer provider makes it cost, on the pool's
// goroutines that settle results: about 6 µs with the SDK's batching
// processor on a 2-core VM where an untraced map of a small task takes
// 1–1.6 µs a task, and 0.8 µs for a span the SDK does not sample
// (BenchmarkObserve, BenchmarkMap). Trace tasks that take milliseconds,
// or sample (the SDK's ParentBased and TraceIDRatioBased samplers) when
// tasks are small and many. A span that is not recorded gets no
// attributes, and a failed attempt's is not kept for a link.
//
// The span of an attempt is named "safepool " and the task's function
// ("safepool square"). Its attributes:
//
//	safepool.map                  the map's number in its pool (pool.Event.Map)
//	safepool.task.index           the task's index in its map
//	safepool.task.function        the task's function
//	safepool.task.attempt         1 for a task's first attempt
//	safepool.task.status          ok, error, killed, memory_limit, timeout, ...
//	safepool.task.peak_memory     the attempt's peak linear memory, in bytes (when known)
//	safepool.task.memory_limit    the memory cap it ran under, in bytes (when known)
//	safepool.worker.pid           the worker process that ran it
//	safepool.agent, safepool.host the cluster agent that ran it, and its machine (on a cluster)
package tracing

import (
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/safepool/safepool/pool"
)

// ScopeName is the instrumentation scope of the spans a Tracer makes.
const ScopeName = "github.com/safepool/safepool/tracing"

// MaxPending bounds the failed attempts a Tracer remembers, to link the
// span of each one's retry to it: an attempt's span context is kept from
// its end until its task's next attempt ends or its task is final. Past
// the bound, a retry's span has no link.
const MaxPending = 1 << 16

// Tracer makes a span of every attempt a pool reports. Its Observe method
// is the pool's Config.Observer; it is safe for concurrent use. A Tracer
// watches one pool.
type Tracer struct {
	tracer trace.Tracer

	mu sync.Mutex
	// failed holds the span contexts of failed attempts whose tasks may
	// run again, by map and index.
	failed map[taskKey]trace.SpanContext
	names  sync.Map // span names by function
}

type taskKey struct {
	m     uint64
	index int
}

// New returns a Tracer that makes its spans with tp's tracer; a nil tp is
// the global provider (otel.GetTracerProvider), read now.
func New(tp trace.TracerProvider) *Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return &Tracer{tracer: tp.Tracer(ScopeName), failed: map[taskKey]trace.SpanContext{}}
}

// Observe is the pool's Config.Observer. It makes a span of each
// attempt's end (pool.EventTaskEnd), and forgets a failed attempt once its
// task is final, or never ran again (pool.EventNotRun). Other events are
// not traced.
func (t *Tracer) Observe(e pool.Event) {
	switch e.Kind {
	case pool.EventTaskEnd:
		t.attempt(e)
	case pool.EventTaskFinal:
		if e.Status != pool.StatusOK {
			t.mu.Lock()
			delete(t.failed, taskKey{e.Map, e.Index})
			t.mu.Unlock()
		}
	case pool.EventNotRun:
		t.mu.Lock()
		for k := range t.failed {
			if k.m == e.Map {
				delete(t.failed, k)
			}
		}
		t.mu.Unlock()
	}
}

// attempt makes the span of the attempt whose end e reports.
func (t *Tracer) attempt(e pool.Event) {
	key := taskKey{e.Map, e.Index}
	start := e.Stats.Start
	if start.IsZero() || start.After(e.Time) {
		start = e.Time // the worker died before it said when the task started
	}
	opts := make([]trace.SpanStartOption, 1, 2) // room for a link
	opts[0] = trace.WithTimestamp(start)
	if e.Attempt > 1 {
		t.mu.Lock()
		prev, ok := t.failed[key]
		delete(t.failed, key)
		t.mu.Unlock()
		if ok {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: prev, Attributes: []attribute.KeyValue{retryOf}}))
		}
	}
	_, span := t.tracer.Start(e.Context(), t.name(e.Func), opts...)
	if !span.IsRecording() {
		// Not sampled: nothing to say, and nothing to link to.
		span.End()
		return
	}
	attrs := make([]attribute.KeyValue, 0, 11)
	attrs = append(attrs,
		attribute.Int64("safepool.map", int64(e.Map)),
		attribute.Int("safepool.task.index", e.Index),
		attribute.String("safepool.task.function", e.Func),
		attribute.Int("safepool.task.attempt", e.Attempt),
		attribute.String("safepool.task.status", e.Status.String()),
		attribute.Int("safepool.worker.pid", e.WorkerPID),
	)
	if e.Stats.PeakMemory > 0 {
		attrs = append(attrs, attribute.Int64("safepool.task.peak_memory", e.Stats.PeakMemory))
	}
	if e.Stats.MemoryLimit > 0 {
		attrs = append(attrs, attribute.Int64("safepool.task.memory_limit", e.Stats.MemoryLimit))
	}
	if e.Agent != "" {
		attrs = append(attrs, attribute.String("safepool.agent", e.Agent))
	}
	if e.Host != "" {
		attrs = append(attrs, attribute.String("safepool.host", e.Host))
	}
	span.SetAttributes(attrs...)
	if e.Status != pool.StatusOK {
		span.SetStatus(codes.Error, e.Reason)
		t.mu.Lock()
		if len(t.failed) < MaxPending {
			t.failed[key] = span.SpanContext()
		}
		t.mu.Unlock()
	}
	span.End(trace.WithTimestamp(e.Time))
}

// name is the span name of an attempt of fn, made once per function.
func (t *Tracer) name(fn string) string {
	if n, ok := t.names.Load(fn); ok {
		return n.(string)
	}
	n, _ := t.names.LoadOrStore(fn, "safepool "+fn)
	return n.(string)
}

// retryOf marks the link from a retry's span to the attempt it retries.
var retryOf = attribute.String("safepool.link", "retry_of")
