package sandbox

import (
	"context"
	"os"
	"testing"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/internal/testguest"
)

// BenchmarkTaskInstance compares, in one process, a task on a warm
// instance (shared) with a task on a fresh one (Config.FreshInstance):
// fresh-reset is what a worker does, a task then a reset of the instance
// to its snapshot after start-up; fresh makes a new instance for each
// task, which is what a worker falls back to when it cannot reset;
// fresh-reset-unwarmed is fresh-reset with the snapshot taken before the
// warm-up call (warmUp); and instantiate-only is the engine's part of
// making an instance. Go SDK guest "tasks",
// handler square, wazero.
//
//	go test -run '^$' -bench TaskInstance -benchtime 2000x ./sandbox/
func BenchmarkTaskInstance(b *testing.B) {
	ctx := context.Background()
	wasm, err := os.ReadFile(testguest.Path(b, "tasks"))
	if err != nil {
		b.Fatal(err)
	}
	eng, err := engine.Lookup(engine.Wazero)
	if err != nil {
		b.Fatal(err)
	}
	c, _, err := eng.Load(ctx, wasm, "", engine.Options{NoInterrupt: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if t, ok := eng.(writeTracker); ok {
		t.OpenWriteTracking() // as a FreshInstance worker does
	}
	ropts := engine.Options{NoInterrupt: true, Resettable: true}
	rc, _, err := eng.Load(ctx, wasm, engine.Dir(b.TempDir(), engine.Wazero, wasm, ropts), ropts)
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	const limit = 64 << 20
	newInstOf := func(b *testing.B, c engine.Compiled) *instance {
		inst, err := newInstance(ctx, c, limit, 64<<10, 0, nil, nil, nil, engine.Grants{}, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		return inst
	}
	newInst := func(b *testing.B) *instance { return newInstOf(b, c) }
	task := func(b *testing.B, inst *instance) {
		inst.sink = func(uint32, []byte) {}
		if err := inst.callTask(ctx, "square", []byte("7")); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("shared", func(b *testing.B) {
		inst := newInst(b)
		defer inst.close()
		for b.Loop() {
			task(b, inst)
		}
	})
	b.Run("fresh", func(b *testing.B) {
		for b.Loop() {
			inst := newInst(b)
			task(b, inst)
			inst.close()
		}
	})
	freshReset := func(warm bool) func(b *testing.B) {
		return func(b *testing.B) {
			inst := newInstOf(b, rc)
			defer inst.close()
			// Snapshot after the handshake's calls and the warm-up, as a
			// worker does.
			inst.sink = func(uint32, []byte) {}
			for _, fn := range []engine.Export{engine.ExportABIVersion, engine.ExportHandlers} {
				if _, err := inst.call(ctx, fn); err != nil {
					b.Fatal(err)
				}
			}
			if warm && !inst.warmUp(ctx) {
				b.Fatal("the warm-up call failed")
			}
			r := inst.g.(engine.Resetter)
			if err := r.Snapshot(); err != nil {
				b.Fatal(err)
			}
			inst.resetter = r
			for b.Loop() {
				task(b, inst)
				if !inst.resetToStart() {
					b.Fatal("the instance could not be reset")
				}
			}
		}
	}
	b.Run("fresh-reset", freshReset(true))
	b.Run("fresh-reset-unwarmed", freshReset(false))
	b.Run("instantiate-only", func(b *testing.B) {
		for b.Loop() {
			h := &engine.Host{Limit: limit, Log: os.Stderr, Sleep: func(int64) bool { return true }, Interrupted: func() bool { return false }}
			g, err := c.Instantiate(ctx, h)
			if err != nil {
				b.Fatal(err)
			}
			g.Close()
		}
	})
}
