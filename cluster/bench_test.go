package cluster_test

import (
	"context"
	"testing"

	"github.com/safepool/safepool/cluster"
	"github.com/safepool/safepool/internal/remote"
)

// BenchmarkSend measures a pool's Send of a 64-task chunk: one publish
// with the stream's acknowledgement.
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
		if err := c.Send(context.Background(), ch); err != nil {
			b.Fatal(err)
		}
	}
}
