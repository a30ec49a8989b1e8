package sandbox_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/internal/enginetest"
	"github.com/safepool/safepool/internal/guestbuild"
	"github.com/safepool/safepool/internal/hostconn"
	"github.com/safepool/safepool/internal/wire"
)

// statefulWorker starts a worker, its cache filled as a pool fills it, on
// sandbox/testdata/stateful: a guest that keeps state between tasks on
// purpose.
func statefulWorker(t *testing.T, fresh bool) *hostconn.Conn {
	t.Helper()
	cache, err := os.UserCacheDir()
	require.NoError(t, err)
	path, err := guestbuild.BuildTo("sandbox/testdata/stateful", filepath.Join(cache, "safepool", "testguests"))
	require.NoError(t, err)
	return startWorker(t, path, fresh)
}

// startWorker starts a worker on the module at path, its cache filled as a
// pool fills it.
func startWorker(t *testing.T, path string, fresh bool) *hostconn.Conn {
	t.Helper()
	return enginetest.StartWorker(t, wire.Init{
		Engine: engine.Wazero, ModulePath: path, CacheDir: enginetest.CacheDir(t),
		MemoryLimit: 64 << 20, Timeout: 20 * time.Second, OutputLimit: 1 << 20, LogLimit: 64 << 10,
		FreshInstance: fresh,
	})
}

var statefulID uint64

// runOne runs one task on the worker and returns its result.
func runOne(t *testing.T, wk *hostconn.Conn, fn, in string) wire.Result {
	t.Helper()
	statefulID++
	require.NoError(t, wk.Send([]wire.Task{{ID: statefulID, Func: fn, Input: []byte(in)}}))
	for {
		ev := wk.Recv()
		require.Nil(t, ev.Death, "worker died: %v", ev.Death)
		if len(ev.Results) > 0 {
			require.Len(t, ev.Results, 1)
			require.Equal(t, statefulID, ev.Results[0].ID)
			return ev.Results[0]
		}
	}
}

// output runs a task that must succeed and returns its output.
func output(t *testing.T, wk *hostconn.Conn, fn, in string) string {
	t.Helper()
	r := runOne(t, wk, fn, in)
	require.Equal(t, wire.StatusOK, r.Status, r.Error)
	return string(r.Output)
}

// TestFreshInstanceSharesNothing: with FreshInstance no task sees what an
// earlier one left, whether its instance was reset or made anew: not a
// variable, not a heap value, not a goroutine, not the bytes of memory it
// grew, not a descriptor it closed, not the state of a task that trapped.
// On a shared instance the same tasks see all of it, which is what makes
// each check able to fail.
func TestFreshInstanceSharesNothing(t *testing.T) {
	t.Run("shared", func(t *testing.T) {
		wk := statefulWorker(t, false)
		require.Equal(t, "1 1", output(t, wk, "count", ""))
		require.Equal(t, "2 2", output(t, wk, "count", ""))
		require.Equal(t, "spawned", output(t, wk, "spawn", ""))
		require.NotEqual(t, "0", output(t, wk, "ticks", ""))
	})

	wk := statefulWorker(t, true)
	for range 3 {
		require.Equal(t, "1 1", output(t, wk, "count", ""))
	}
	require.Equal(t, "spawned", output(t, wk, "spawn", ""))
	require.Equal(t, "0", output(t, wk, "ticks", ""), "a goroutine left behind does not run in the next task")
	require.Equal(t, "0", output(t, wk, "grow", "8"))
	require.Equal(t, "0", output(t, wk, "grow", "8"), "memory grown by a task reads zero in the next")
	require.Equal(t, "1 1", output(t, wk, "count", ""))
	require.Equal(t, "closed", output(t, wk, "close", ""))
	require.Equal(t, "1 1", output(t, wk, "count", ""))
	require.Equal(t, wire.StatusMemoryLimit, runOne(t, wk, "grow", "100").Status)
	require.Equal(t, "1 1", output(t, wk, "count", ""))
}

// TestFreshInstanceWarmUpUnseen: a worker warms an instance up with a call
// before it snapshots it; a guest that does not answer that call as an
// unknown function, as testdata/countcalls (which counts every call, and
// whose source is countcalls.wat), gets an instance snapshot without it,
// so every task still sees the state right after start-up. A shared
// instance sees the count go up, which is what makes the check able to
// fail.
func TestFreshInstanceWarmUpUnseen(t *testing.T) {
	path, err := filepath.Abs("testdata/countcalls/countcalls.wasm")
	require.NoError(t, err)
	wk := startWorker(t, path, false)
	require.Equal(t, "1", output(t, wk, "count", ""))
	require.Equal(t, "2", output(t, wk, "count", ""))

	wk = startWorker(t, path, true)
	for range 3 {
		require.Equal(t, "1", output(t, wk, "count", ""))
	}
}
