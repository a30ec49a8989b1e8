// Command tracing traces a map with OpenTelemetry: square 0..5 on two
// workers under retry, inside a span of the program's own, and SIGKILL the
// worker that runs task 3. Every attempt of every task is a span under the
// program's span; task 3 has two, the killed one with an error status and
// the retry linked to it. It prints the trace as a tree.
//
//	go run ./examples/tracing
//
// The spans go to an in-memory exporter so that the program can print
// them; a real program gives its tracer provider an exporter of its
// choice (OTLP to a collector, Jaeger, Tempo, ...), and nothing else
// changes.
package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/safepool/safepool/internal/guestbuild"
	"github.com/safepool/safepool/pool"
	"github.com/safepool/safepool/tracing"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tracing:", err)
		os.Exit(1)
	}
}

func run() error {
	module, err := guestbuild.Build("examples/seed/guest") // square, with a 50 ms pause
	if err != nil {
		return err
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	var once sync.Once
	p, err := pool.New(context.Background(), pool.Config{
		Module:     module,
		Workers:    2,
		KillPolicy: pool.Retry,
		// One span per attempt, under the span of the map's context.
		Observer: tracing.New(tp).Observe,
		// The OOM killer, played by us: SIGKILL the worker that starts
		// task 3 the first time.
		OnEvent: func(e pool.Event) {
			if e.Kind == pool.EventTaskStart && e.Index == 3 && e.Attempt == 1 {
				once.Do(func() {
					fmt.Printf("kill -9 %d (the worker running task 3)\n", e.WorkerPID)
					_ = syscall.Kill(e.WorkerPID, syscall.SIGKILL)
				})
			}
		},
	})
	if err != nil {
		return err
	}
	defer p.Close()

	ctx, span := tp.Tracer("example").Start(context.Background(), "square 0..5")
	squares, err := pool.MapJSON[int, int](ctx, p, "square", []int{0, 1, 2, 3, 4, 5})
	span.End()
	if err != nil {
		return err
	}
	out := make([]int, len(squares))
	for i, r := range squares {
		out[i] = r.Value
	}
	fmt.Println(out)
	fmt.Println()
	printTree(exp.GetSpans(), span.SpanContext())
	return nil
}

// printTree prints the root span and, under it, each attempt's span by
// task and attempt, with its status, worker and link.
func printTree(spans tracetest.SpanStubs, root trace.SpanContext) {
	var attempts []tracetest.SpanStub
	for _, s := range spans {
		if s.SpanContext.SpanID() == root.SpanID() {
			fmt.Printf("%s (trace %s)\n", s.Name, s.SpanContext.TraceID())
		} else if s.Parent.SpanID() == root.SpanID() {
			attempts = append(attempts, s)
		}
	}
	value := func(s tracetest.SpanStub, key string) attribute.Value {
		for _, kv := range s.Attributes {
			if string(kv.Key) == key {
				return kv.Value
			}
		}
		return attribute.Value{}
	}
	attr := func(s tracetest.SpanStub, key string) string { return value(s, key).Emit() }
	// By task, then by attempt.
	order := func(s tracetest.SpanStub) int64 {
		return value(s, "safepool.task.index").AsInt64()<<16 | value(s, "safepool.task.attempt").AsInt64()
	}
	slices.SortFunc(attempts, func(a, b tracetest.SpanStub) int { return cmp.Compare(order(a), order(b)) })
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range attempts {
		byID[s.SpanContext.SpanID()] = s
	}
	for _, s := range attempts {
		line := fmt.Sprintf("  %s: task %s, attempt %s, %s on worker %s, %s",
			s.Name, attr(s, "safepool.task.index"), attr(s, "safepool.task.attempt"),
			attr(s, "safepool.task.status"), attr(s, "safepool.worker.pid"),
			s.EndTime.Sub(s.StartTime).Round(time.Millisecond))
		if s.Status.Code == codes.Error {
			line += "; error: " + s.Status.Description
		}
		for _, l := range s.Links {
			if prev, ok := byID[l.SpanContext.SpanID()]; ok && slices.Contains(l.Attributes, attribute.String("safepool.link", "retry_of")) {
				line += fmt.Sprintf("; retries attempt %s", attr(prev, "safepool.task.attempt"))
			}
		}
		fmt.Println(line)
	}
}
