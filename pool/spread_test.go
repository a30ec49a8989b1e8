package pool_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/pool"
)

// A map of two tasks on two idle workers runs one task on each: a busy
// worker does not take the second as a batch queued behind its first
// while the other waits for work. Locally and on an agent, whose driver
// is the same.
func TestTwoTasksSpreadOverIdleWorkers(t *testing.T) {
	for _, target := range []string{"", "embedded"} {
		name := target
		if name == "" {
			name = "local"
		}
		t.Run(name, func(t *testing.T) {
			p := newPool(t, "tasks", func(c *pool.Config) { c.Cluster, c.Workers = target, 2 })
			for round := range 5 {
				rs, err := p.Map(context.Background(), "sleep", [][]byte{[]byte("200"), []byte("200")})
				require.NoError(t, err)
				require.Equal(t, "slept", string(rs[0].Output))
				require.Equal(t, "slept", string(rs[1].Output))
				require.NotEqual(t, rs[0].Stats.WorkerPID, rs[1].Stats.WorkerPID,
					"round %d: both tasks ran on worker %d while the other was idle", round, rs[0].Stats.WorkerPID)
			}
		})
	}
}
