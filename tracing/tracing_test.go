package tracing_test

import (
	"context"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	_ "github.com/safepool/safepool/cluster" // the "embedded" transport
	"github.com/safepool/safepool/internal/enginetest"
	"github.com/safepool/safepool/pool"
	"github.com/safepool/safepool/tracing"
)

// killFirst SIGKILLs, for real, the worker that starts the first attempt
// of task index, once, and remembers its pid.
type killFirst struct {
	index  int
	mu     sync.Mutex
	killed int // the pid, once killed
}

func (k *killFirst) onEvent(e pool.Event) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e.Kind == pool.EventTaskStart && e.Index == k.index && e.Attempt == 1 && k.killed == 0 {
		k.killed = e.WorkerPID
		_ = syscall.Kill(e.WorkerPID, syscall.SIGKILL)
	}
}

func (k *killFirst) pid() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.killed
}

// traced is a pool whose attempts a Tracer turns into spans that rec
// keeps, and the tracer that the test's own spans come from.
func traced(t *testing.T, edit func(*pool.Config)) (*pool.Pool, *tracing.Tracer, *tracetest.SpanRecorder, trace.Tracer) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := tracing.New(tp)
	p := enginetest.NewPool(t, "tasks", func(c *pool.Config) {
		c.Observer = tr.Observe
		if edit != nil {
			edit(c)
		}
	})
	return p, tr, rec, tp.Tracer("test")
}

// attrs is a span's attributes by key, as strings.
func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

// byTask is the attempts' spans by task index, in the order they ended.
func byTask(t *testing.T, rec *tracetest.SpanRecorder) map[string][]sdktrace.ReadOnlySpan {
	t.Helper()
	out := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if a := attrs(s); a["safepool.task.index"] != "" {
			out[a["safepool.task.index"]] = append(out[a["safepool.task.index"]], s)
		}
	}
	return out
}

// A map under retry whose worker is SIGKILLed mid-task: one span per
// attempt, all under the caller's span; the killed attempt's says so and
// names its worker, and the retry's links to it.
func TestSpansOfAKilledTaskAndItsRetry(t *testing.T) {
	k := &killFirst{index: 3}
	p, tr, rec, test := traced(t, func(c *pool.Config) {
		c.KillPolicy = pool.Retry
		c.OnEvent = k.onEvent
	})
	ctx, parent := test.Start(context.Background(), "the caller's map")
	rs, err := p.Map(ctx, "slow_square", enginetest.Ints(6))
	parent.End()
	require.NoError(t, err)
	require.Equal(t, 2, rs[3].Attempts)

	tasks := byTask(t, rec)
	require.Len(t, tasks, 6)
	for idx, spans := range tasks {
		want := 1
		if idx == "3" {
			want = 2
		}
		require.Len(t, spans, want, "task %s's attempts", idx)
		for _, s := range spans {
			require.Equal(t, "safepool slow_square", s.Name())
			require.Equal(t, parent.SpanContext().TraceID(), s.SpanContext().TraceID(), "one trace")
			require.Equal(t, parent.SpanContext().SpanID(), s.Parent().SpanID(), "under the caller's span")
			require.False(t, s.StartTime().IsZero())
			require.False(t, s.EndTime().Before(s.StartTime()))
			require.Equal(t, "1", attrs(s)["safepool.map"])
			require.Equal(t, "slow_square", attrs(s)["safepool.task.function"])
			require.NotEmpty(t, attrs(s)["safepool.worker.pid"])
			require.Empty(t, attrs(s)["safepool.agent"], "a local pool has no agent")
		}
	}
	killed, retry := tasks["3"][0], tasks["3"][1]
	a := attrs(killed)
	require.Equal(t, "killed", a["safepool.task.status"])
	require.Equal(t, "1", a["safepool.task.attempt"])
	require.Equal(t, strconv.Itoa(k.pid()), a["safepool.worker.pid"], "the worker that was killed")
	require.Equal(t, codes.Error, killed.Status().Code)
	require.Contains(t, killed.Status().Description, "SIGKILL")

	a = attrs(retry)
	require.Equal(t, "ok", a["safepool.task.status"])
	require.Equal(t, "2", a["safepool.task.attempt"])
	require.NotEqual(t, strconv.Itoa(k.pid()), a["safepool.worker.pid"])
	require.Equal(t, codes.Unset, retry.Status().Code)
	require.Len(t, retry.Links(), 1)
	require.Equal(t, killed.SpanContext(), retry.Links()[0].SpanContext, "the retry links to the attempt it retries")
	require.Contains(t, retry.Links()[0].Attributes, attribute.String("safepool.link", "retry_of"))
	require.False(t, retry.StartTime().Before(killed.EndTime()), "the retry started after the kill")
	require.Zero(t, tr.Pending(), "nothing is kept once the task is final")
}

// Under skip the killed attempt is final: its span is the task's only one,
// and the tracer keeps nothing of it.
func TestSpanOfASkippedKill(t *testing.T) {
	k := &killFirst{index: 1}
	p, tr, rec, _ := traced(t, func(c *pool.Config) { c.OnEvent = k.onEvent })
	rs, err := p.Map(context.Background(), "slow_square", enginetest.Ints(3))
	require.NoError(t, err)
	require.Equal(t, pool.StatusKilled, rs[1].Status)

	tasks := byTask(t, rec)
	require.Len(t, tasks["1"], 1)
	s := tasks["1"][0]
	require.Equal(t, "killed", attrs(s)["safepool.task.status"])
	require.Equal(t, codes.Error, s.Status().Code)
	require.False(t, s.Parent().IsValid(), "a map with no span in its context: each attempt is a trace's root")
	// The task's final event, which lets the tracer forget the attempt,
	// comes just after its result was delivered: maybe after Map returned.
	require.Eventually(t, func() bool { return tr.Pending() == 0 }, 5*time.Second, time.Millisecond)
}

// Attempts under a span that is not sampled make no span, and the tracer
// keeps nothing of those that failed.
func TestUnsampledSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := tracing.New(tp)
	k := &killFirst{index: 0}
	p := enginetest.NewPool(t, "tasks", func(c *pool.Config) {
		c.Observer = tr.Observe
		c.OnEvent = k.onEvent
		c.KillPolicy = pool.Retry
	})
	ctx, parent := tp.Tracer("test").Start(context.Background(), "not sampled")
	rs, err := p.Map(ctx, "slow_square", enginetest.Ints(3))
	parent.End()
	require.NoError(t, err)
	require.Equal(t, 2, rs[0].Attempts)
	require.Empty(t, rec.Ended())
	require.Zero(t, tr.Pending())
}

// On a cluster ("embedded": a JetStream server and an agent in this
// process) each attempt's span names the agent and the host that ran it.
func TestSpansNameTheAgent(t *testing.T) {
	p, _, rec, _ := traced(t, func(c *pool.Config) { c.Cluster = "embedded" })
	_, err := p.Map(context.Background(), "square", enginetest.Ints(4))
	require.NoError(t, err)
	tasks := byTask(t, rec)
	require.Len(t, tasks, 4)
	for _, spans := range tasks {
		a := attrs(spans[0])
		require.NotEmpty(t, a["safepool.agent"])
		require.NotEmpty(t, a["safepool.host"])
		require.Equal(t, "ok", a["safepool.task.status"])
	}
}

// The tracer's memory of failed attempts is bounded: a map that ends with
// retries never run (pool.EventNotRun) drops its own, and no more than
// MaxPending are kept. (Events made here, to reach the bound: the pool's
// own come in the tests above.)
func TestPendingIsBounded(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := tracing.New(tp)
	failed := func(m uint64, i int) pool.Event {
		return pool.Event{Kind: pool.EventTaskEnd, Map: m, Index: i, Func: "f", Attempt: 1, Status: pool.StatusKilled, Reason: "worker killed by SIGKILL"}
	}
	tr.Observe(failed(1, 0))
	tr.Observe(failed(2, 0))
	tr.Observe(failed(2, 1))
	require.Equal(t, 3, tr.Pending())
	tr.Observe(pool.Event{Kind: pool.EventNotRun, Map: 2, Func: "f", Count: 2})
	require.Equal(t, 1, tr.Pending(), "map 2's are dropped, map 1's kept")
	tr.Observe(pool.Event{Kind: pool.EventTaskFinal, Map: 1, Index: 0, Func: "f", Attempt: 1, Status: pool.StatusKilled})
	require.Zero(t, tr.Pending())

	for i := range tracing.MaxPending + 10 {
		tr.Observe(failed(3, i))
	}
	require.Equal(t, tracing.MaxPending, tr.Pending())
	tr.Observe(pool.Event{Kind: pool.EventNotRun, Map: 3, Func: "f", Count: tracing.MaxPending + 10})
	require.Zero(t, tr.Pending())
}

// New(nil) takes the global provider, read when New is called; an attempt
// whose worker died before it said when the task started is a span of no
// length at its end.
func TestGlobalProviderAndUnknownStart(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	tr := tracing.New(nil)
	end := time.Now()
	tr.Observe(pool.Event{Kind: pool.EventTaskEnd, Time: end, Map: 1, Index: 7, Func: "f", Attempt: 1,
		Status: pool.StatusKilled, Reason: "worker killed by SIGKILL before the task started",
		WorkerPID: 99, Stats: pool.Stats{End: end, WorkerPID: 99}})
	spans := rec.Ended()
	require.Len(t, spans, 1)
	require.Equal(t, "safepool f", spans[0].Name())
	require.True(t, spans[0].StartTime().Equal(end))
	require.True(t, spans[0].EndTime().Equal(end))
	require.Equal(t, "99", attrs(spans[0])["safepool.worker.pid"])
	require.Empty(t, attrs(spans[0])["safepool.task.peak_memory"], "not known, not said")
}
