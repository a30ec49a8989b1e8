package tracing_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/safepool/safepool/internal/enginetest"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/pool"
	"github.com/safepool/safepool/tracing"
)

// BenchmarkObserve is the tracer's cost per attempt: the span of an ok
// attempt's end, made by the no-op provider, by the SDK with its batching
// processor (exporting to nothing), and by the SDK for a map whose span is
// not sampled.
func BenchmarkObserve(b *testing.B) {
	now := time.Now()
	e := pool.Event{Kind: pool.EventTaskEnd, Time: now, Map: 1, Func: "square", Attempt: 1, Status: pool.StatusOK, WorkerPID: 4242,
		Stats: pool.Stats{Start: now.Add(-time.Microsecond), End: now, WorkerPID: 4242, PeakMemory: 1 << 17, MemoryLimit: 64 << 20}}
	sdk := func(opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
		tp := sdktrace.NewTracerProvider(append(opts, sdktrace.WithBatcher(tracetest.NewNoopExporter()))...)
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		return tp
	}
	for _, tc := range []struct {
		name string
		tr   *tracing.Tracer
	}{
		{"noop", tracing.New(noop.NewTracerProvider())},
		{"sdk", tracing.New(sdk())},
		{"sdk-unsampled", tracing.New(sdk(sdktrace.WithSampler(sdktrace.NeverSample())))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				e.Index = i
				tc.tr.Observe(e)
			}
		})
	}
}

// BenchmarkMap is what tracing costs a map of the Go SDK guest's "square"
// on two workers, under a span: no tracer, a tracer whose spans the SDK
// samples and batches (exporting to nothing), and one under a span the SDK
// does not sample. ns/task side by side is the figure to compare.
//
//	go test -run '^$' -bench Map -benchtime 5x ./tracing/
func BenchmarkMap(b *testing.B) {
	const n = 20_000
	inputs := enginetest.Ints(n)
	for _, mode := range []string{"off", "sampled", "unsampled"} {
		b.Run(mode, func(b *testing.B) {
			sampler := sdktrace.AlwaysSample()
			if mode == "unsampled" {
				sampler = sdktrace.NeverSample()
			}
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			cfg := pool.Config{Module: testguest.Path(b, "tasks"), Workers: 2, CacheDir: enginetest.CacheDir(b)}
			if mode != "off" {
				cfg.Observer = tracing.New(tp).Observe
			}
			p, err := pool.New(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = p.Close() })
			ctx, span := tp.Tracer("bench").Start(context.Background(), "map")
			defer span.End()
			if _, err := p.Map(ctx, "square", inputs[:1000]); err != nil { // warm both workers
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := p.Map(ctx, "square", inputs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/task")
		})
	}
}
