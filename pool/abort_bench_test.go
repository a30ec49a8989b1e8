package pool_test

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/pool"
)

// BenchmarkAbort measures how promptly a map under the Abort policy
// returns once one of its workers is SIGKILLed: the time from the kill to
// Map returning its *TaskError, with the other worker busy on a long task
// that must be stopped too. Reported as ms/abort.
func BenchmarkAbort(b *testing.B) {
	var killedAt atomic.Int64
	p, err := pool.New(context.Background(), pool.Config{
		Module:     testguest.Path(b, "tasks"),
		Workers:    2,
		CacheDir:   cacheDir(b),
		KillPolicy: pool.Abort,
		OnEvent: func(e pool.Event) {
			if e.Kind == pool.EventTaskStart && e.Index == 0 {
				killedAt.Store(time.Now().UnixNano())
				_ = syscall.Kill(e.WorkerPID, syscall.SIGKILL)
			}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Terminate()
	in := [][]byte{[]byte("60000"), []byte("60000")} // sleep: a minute each
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		_, err := p.Map(context.Background(), "sleep", in)
		returned := time.Now()
		if !errors.Is(err, pool.ErrTaskKilled) {
			b.Fatalf("want a killed-task error, got %v", err)
		}
		total += returned.Sub(time.Unix(0, killedAt.Load()))
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/abort")
}
