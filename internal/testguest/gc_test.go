package testguest_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The Go SDK yields to the scheduler after every task so that the garbage
// collector can run. These tests make 500 MiB of garbage under a 64 MiB cap,
// one task at a time and in batches, and check that memory stays far below
// the cap.
//
// They run with wazero's default fake clock, which advances 1 ms at every
// reading. That is where a Go reactor that never yields fails: the same
// module built without the yield ran out of memory after about 300 tasks,
// both through safepool_call and through safepool_batch. With real clocks
// the collector's allocation assists happen to keep up even without the
// yield, so a test with real clocks would pass whether the SDK yields or not.

// garbageCapPages is a 64 MiB cap; garbageMaxMiB is how large the memory may
// get under it while still counting as flat.
const (
	garbageCapPages = 1024
	garbageMaxMiB   = 32
	garbageTasks    = 500
)

func TestGarbageCallsKeepMemoryFlat(t *testing.T) {
	in := loadSDK(t, "tasks", hostOptions{memoryPages: garbageCapPages, fakeClock: true})
	peak := 0.0
	for i := range garbageTasks {
		require.Equal(t, ok("1048576"), in.mustCall("garbage", ""), "task %d", i)
		peak = max(peak, in.memoryMiB())
	}
	t.Logf("linear memory after %d calls: %.1f MiB (peak %.1f MiB)", garbageTasks, in.memoryMiB(), peak)
	require.Less(t, peak, float64(garbageMaxMiB))
}

func TestGarbageBatchesKeepMemoryFlat(t *testing.T) {
	in := loadSDK(t, "tasks", hostOptions{memoryPages: garbageCapPages, fakeClock: true})
	const perBatch = 100
	tasks := make([]task, perBatch)
	for i := range tasks {
		tasks[i] = task{"garbage", ""}
	}
	peak := 0.0
	for b := range garbageTasks / perBatch {
		got, err := in.batch(tasks...)
		require.NoError(t, err, "batch %d; stderr: %s", b, in.stderr.String())
		require.Len(t, got, perBatch)
		for _, o := range got {
			require.Equal(t, ok("1048576"), o)
		}
		peak = max(peak, in.memoryMiB())
	}
	t.Logf("linear memory after %d batched tasks: %.1f MiB", garbageTasks, peak)
	require.Less(t, peak, float64(garbageMaxMiB))
}
