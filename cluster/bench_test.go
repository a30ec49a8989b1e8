package cluster_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/safepool/safepool/cluster"
	"github.com/safepool/safepool/internal/enginetest"
	"github.com/safepool/safepool/internal/remote"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/pool"
)

// BenchmarkSend measures a pool's Send of a 64-task chunk: its encoding,
// and one publish with the stream's acknowledgement.
func BenchmarkSend(b *testing.B) {
	srv, err := cluster.StartServer(cluster.ServerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	c, err := remote.Open(context.Background(), remote.OpenConfig{Target: srv.ClientURL()}, newFakePool())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ch := chunk(c.Pool(), 1, 64)
	b.ResetTimer()
	for i := range b.N {
		ch.ID = uint64(i)
		if err := send(context.Background(), c, ch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMapCluster measures Map's throughput on the local pool and on
// "embedded" side by side: one op is a map of "square" over n integers on
// the WAT guest, two workers. ns/task is the figure to compare; the ratio
// of the two rows is the cluster's cost.
func BenchmarkMapCluster(b *testing.B) {
	const n = 50_000
	inputs := make([][]byte, n)
	for i := range inputs {
		inputs[i] = []byte(strconv.Itoa(i))
	}
	for _, target := range []string{"", "embedded"} {
		name := target
		if name == "" {
			name = "local"
		}
		b.Run(name, func(b *testing.B) {
			p, err := pool.New(context.Background(), pool.Config{Module: testguest.Path(b, "wsquare"), Workers: 2,
				CacheDir: enginetest.CacheDir(b), Cluster: target})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			ctx := context.Background()
			if _, err := p.Map(ctx, "square", inputs[:5000]); err != nil {
				b.Fatal(err)
			}
			var rs []pool.Result
			cpu0 := enginetest.HostCPU(b)
			for b.Loop() {
				if rs, err = p.Map(ctx, "square", inputs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/task")
			b.ReportMetric(float64(enginetest.HostCPU(b)-cpu0)/float64(b.N*n), "host-cpu-ns/task")
			for i, r := range rs {
				if r.Status != pool.StatusOK || string(r.Output) != strconv.Itoa(i*i) {
					b.Fatalf("square(%d) = %s %q", i, r.Status, r.Output)
				}
			}
		})
	}
}
