package sandbox

import (
	"context"
	"os"
	"testing"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/internal/testguest"
)

// BenchmarkTaskInstance compares, in one process, a task on a warm
// instance with a task on a fresh one (Config.FreshInstance), and splits
// the fresh one's cost between the engine's instantiation and the guest's
// _initialize (for a Go guest, the Go runtime's start). Go SDK guest
// "tasks", handler square, wazero.
//
//	go test -run '^$' -bench TaskInstance -benchtime 200x ./sandbox/
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
	const limit = 64 << 20
	newInst := func(b *testing.B) *instance {
		inst, err := newInstance(ctx, c, limit, 64<<10, 0, nil, nil, nil, engine.Grants{}, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		return inst
	}
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
