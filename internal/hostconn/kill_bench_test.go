package hostconn_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/safepool/safepool/internal/hostconn"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/internal/wire"
	_ "github.com/safepool/safepool/sandbox" // makes this test binary a worker when re-executed
)

// BenchmarkKillToDeath measures how long the host takes to learn that a
// worker was SIGKILLed: from syscall.Kill to Recv's death event, which
// comes when the kernel closes the dead worker's pipe, after it has torn
// down its address space. It bounds how soon a killed task can run again.
// Reports ns/op per kill; the Go guest's workers are larger than the WAT
// guest's, and take longer to tear down.
func BenchmarkKillToDeath(b *testing.B) {
	for _, module := range []string{"tasks", "wsquare"} {
		b.Run(module, func(b *testing.B) {
			cfg := hostconn.Config{Init: wire.Init{ModulePath: testguest.Path(b, module), CacheDir: b.TempDir(), MemoryLimit: 64 << 20}}
			var total time.Duration
			for b.Loop() {
				b.StopTimer()
				wk, err := hostconn.Start(cfg)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				if err := syscall.Kill(wk.PID(), syscall.SIGKILL); err != nil {
					b.Fatal(err)
				}
				ev := wk.Recv()
				total += time.Since(start)
				if ev.Death == nil || !ev.Death.Exit.Signaled() {
					b.Fatalf("expected a death by signal, got %+v", ev)
				}
				wk.Release()
				b.StartTimer()
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/kill")
		})
	}
}
