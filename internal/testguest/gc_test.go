package testguest_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A Go reactor's collector runs its background workers only when the
// module yields, and the SDK yields by time, not after every task (see
// guest's yield). These tests make 500 MiB of garbage under a 64 MiB cap,
// one task at a time and in batches, and check that memory stays far below
// the cap:
//
//   - under wazero's default fake clock, which advances 1 ms at every
//     reading: there the runtime's GC CPU limiter stops the collector's
//     allocation assists, and a module that never yields ran out of memory
//     after about 300 tasks, through safepool_call and safepool_batch alike;
//   - under real clocks, as the sandbox gives, with 16 MiB kept live. Here
//     this one also stays bounded (40 MiB) with the yield taken out, so it
//     checks the bound rather than the yield; the fake-clock tests are the
//     ones that fail without it.
//
// TestYieldPolicy in package guest shows that small tasks do not yield after
// every task.

// garbageCapPages is a 64 MiB cap; garbageMaxMiB is how large the memory may
// get under it while still counting as flat.
const (
	garbageCapPages = 1024
	garbageMaxMiB   = 32
	// With 16 MiB live the collector's goal is about 32 MiB.
	garbageLiveMaxMiB = 48
	garbageTasks      = 500
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

func TestGarbageWithLiveHeapKeepsMemoryBounded(t *testing.T) {
	in := loadSDK(t, "tasks", hostOptions{memoryPages: garbageCapPages})
	require.Equal(t, ok("16"), in.mustCall("hold", "16"))
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
	t.Logf("linear memory after %d batched tasks with 16 MiB live: %.1f MiB", garbageTasks, peak)
	require.Less(t, peak, float64(garbageLiveMaxMiB))
}
