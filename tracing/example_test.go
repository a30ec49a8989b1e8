package tracing_test

import (
	"context"
	"log"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/safepool/safepool/pool"
	"github.com/safepool/safepool/tracing"
)

// A map traced under the caller's span: each attempt of each task is a
// span under "resize photos". The provider here exports nowhere; a
// program would give it an exporter (OTLP, say).
func Example() {
	ctx := context.Background()
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(ctx) }()
	otel.SetTracerProvider(tp)

	p, err := pool.New(ctx, pool.Config{
		Module:     "tasks.wasm",
		KillPolicy: pool.Retry,
		Observer:   tracing.New(nil).Observe, // the global provider, set above
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	ctx, span := otel.Tracer("photos").Start(ctx, "resize photos")
	defer span.End()
	if _, err := p.Map(ctx, "resize", [][]byte{[]byte("a.jpg"), []byte("b.jpg")}); err != nil {
		log.Fatal(err)
	}
}
