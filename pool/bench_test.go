package pool_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/safepool/safepool/internal/enginetest"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/pool"
)

// The dispatch benchmarks run "square" on both guests: the Go SDK guest
// ("tasks"), whose per-call cost inside the guest is about a microsecond,
// and the hand-written WAT guest ("wsquare"), whose guest cost is close to
// nothing, so that its figures are mostly the pool's own.
var benchModules = []string{"tasks", "wsquare"}

// benchPool starts a two-worker pool on module and closes it when b ends.
func benchPool(b *testing.B, module string) *pool.Pool {
	b.Helper()
	return benchPoolWith(b, pool.Config{Module: testguest.Path(b, module)})
}

// benchPoolWith starts a two-worker pool with cfg, on the benchmarks'
// compilation cache, and closes it when b ends.
func benchPoolWith(b *testing.B, cfg pool.Config) *pool.Pool {
	b.Helper()
	cfg.Workers, cfg.CacheDir = 2, cacheDir(b)
	p, err := pool.New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	return p
}

// BenchmarkMap measures Map's throughput: one op is a map of "square" over
// n integers on two workers. ns/task is the figure to compare.
func BenchmarkMap(b *testing.B) {
	const n = 50_000
	for _, module := range benchModules {
		b.Run(module, func(b *testing.B) {
			benchMap(b, benchPool(b, module), n)
		})
	}
}

// BenchmarkMapFresh measures what Config.FreshInstance costs a Map: the
// same map of "square" on the Go SDK guest, on a shared instance and on a
// fresh one per task (a reset to the snapshot after start-up under
// wazero), side by side. The ratio of their ns/task is the figure to
// compare.
//
//	go test -run '^$' -bench MapFresh -benchtime 3x ./pool/
func BenchmarkMapFresh(b *testing.B) {
	const n = 20_000
	for _, fresh := range []bool{false, true} {
		name := map[bool]string{false: "shared", true: "fresh"}[fresh]
		b.Run(name, func(b *testing.B) {
			benchMap(b, benchPoolWith(b, pool.Config{Module: testguest.Path(b, "tasks"), FreshInstance: fresh}), n)
		})
	}
}

// benchMap runs Map of "square" over n integers on p per op, after a
// smaller map that warms every worker, and reports ns/task.
func benchMap(b *testing.B, p *pool.Pool, n int) {
	inputs := make([][]byte, n)
	for i := range inputs {
		inputs[i] = []byte(strconv.Itoa(i))
	}
	ctx := context.Background()
	if _, err := p.Map(ctx, "square", inputs[:1000]); err != nil { // warm both workers
		b.Fatal(err)
	}
	var rs []pool.Result
	pids := p.Snapshot().Workers
	host, workers := enginetest.HostCPU(b), enginetest.WorkerCPU(pids)
	for b.Loop() {
		var err error
		if rs, err = p.Map(ctx, "square", inputs); err != nil {
			b.Fatal(err)
		}
	}
	tasks := float64(b.N * n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/tasks, "ns/task")
	// CPU time moves less than wall time when other work shares the
	// cores: compare these between builds on a busy machine.
	b.ReportMetric(float64(enginetest.HostCPU(b)-host)/tasks, "host-cpu-ns/task")
	if slices.Equal(p.Snapshot().Workers, pids) {
		b.ReportMetric(float64(enginetest.WorkerCPU(pids)-workers)/tasks, "worker-cpu-ns/task")
	}
	if got := string(rs[n-1].Output); got != strconv.Itoa((n-1)*(n-1)) {
		b.Fatalf("square(%d) = %q", n-1, got)
	}
}

// BenchmarkApply measures one task's round trip through the pool: queue,
// pipe, guest, pipe, result. It also reports the 50th and 99th percentiles,
// since a mean hides the tail a caller waits for.
func BenchmarkApply(b *testing.B) {
	for _, module := range benchModules {
		b.Run(module, func(b *testing.B) {
			p := benchPool(b, module)
			ctx := context.Background()
			for range 100 { // warm up
				if _, err := p.Apply(ctx, "square", []byte("7")); err != nil {
					b.Fatal(err)
				}
			}
			lat := make([]time.Duration, 0, 1<<16)
			for b.Loop() {
				start := time.Now()
				r, err := p.Apply(ctx, "square", []byte("7"))
				lat = append(lat, time.Since(start))
				if err != nil || r.Status != pool.StatusOK || string(r.Output) != "49" {
					b.Fatalf("apply: %v %s %q", err, r.Status, r.Output)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		})
	}
}
