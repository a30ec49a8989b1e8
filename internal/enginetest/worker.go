package enginetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/internal/hostconn"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/internal/wire"
	"github.com/safepool/safepool/module"
)

// The helpers of the worker-level cases: a real worker process, driven
// through internal/hostconn as a pool drives it.

const (
	testCap     = 64 << 20
	testTimeout = 15 * time.Second // generous: -race slows the host side of a guest's stack growth
)

// recursion is how unbounded recursion in a Go guest ends. The guest keeps
// its goroutine stacks in linear memory; under wazero they run into the
// memory cap first, while wasmtime's native stack for wasm (512 KiB)
// overflows long before, which is a trap.
func recursion(eng string) (wire.Status, string) {
	if eng == engine.Wasmtime {
		return wire.StatusError, "wasm error: stack overflow"
	}
	return wire.StatusMemoryLimit, "memory limit of 64 MiB reached"
}

func startWorker(t *testing.T, eng, module string, edit func(*wire.Init)) *hostconn.Conn {
	t.Helper()
	init := wire.Init{
		Engine:      eng,
		ModulePath:  testguest.Path(t, module),
		CacheDir:    CacheDir(t),
		MemoryLimit: testCap,
		Timeout:     testTimeout,
		OutputLimit: 1 << 20,
		LogLimit:    64 << 10,
	}
	if edit != nil {
		edit(&init)
	}
	return StartWorker(t, init)
}

// StartWorker starts a worker with init, its cache filled first as a pool
// fills it (precompile), and kills it when t ends.
func StartWorker(t *testing.T, init wire.Init) *hostconn.Conn {
	t.Helper()
	precompile(t, &init)
	wk, err := hostconn.Start(hostconn.Config{Init: init})
	require.NoError(t, err)
	t.Cleanup(func() { wk.Kill(); wk.Release() })
	return wk
}

var precompiled sync.Map // engine, module, cache directory and options -> struct{}

// precompile fills the cache before the first worker of a module starts, as
// a pool does: a worker that compiles cold under -race can take longer than
// its start timeout. Later starts find the cache as the worker left it.
func precompile(t *testing.T, init *wire.Init) {
	t.Helper()
	opts := engine.Options{NoInterrupt: init.Timeout == 0, Resettable: init.FreshInstance}
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%+v", init.Engine, init.ModulePath, init.CacheDir, opts)
	if init.CacheDir == "" {
		return
	}
	if _, done := precompiled.Load(key); done {
		return
	}
	wasm, err := os.ReadFile(init.ModulePath)
	require.NoError(t, err)
	_, err = engine.Prepare(context.Background(), init.Engine, wasm, init.CacheDir, opts)
	require.NoError(t, err)
	precompiled.Store(key, struct{}{})
}

// cacheDir is shared by all tests, as workers of one machine share it.
// CacheDir is the compilation cache every test shares.
func CacheDir(t testing.TB) string {
	// Stable across runs: compiling a module under -race takes seconds.
	d := filepath.Join(os.TempDir(), "safepool-test-cache")
	require.NoError(t, os.MkdirAll(d, 0o755))
	return d
}

var nextID atomic.Uint64

// task makes a task with an ID of its own.
func task(fn, in string) wire.Task {
	return wire.Task{ID: nextID.Add(1), Func: fn, Input: []byte(in)}
}

// run sends the tasks as one batch and returns their results in order.
func run(t *testing.T, wk *hostconn.Conn, tasks ...wire.Task) []wire.Result {
	t.Helper()
	require.NoError(t, wk.Send(tasks))
	byID := map[uint64]wire.Result{}
	for len(byID) < len(tasks) {
		ev := wk.Recv()
		require.Nil(t, ev.Death, "worker died: %v", ev.Death)
		if c := ev.HostCall; c != nil {
			require.NoError(t, wk.Reply(answerHostCall(c)))
			continue
		}
		for _, r := range ev.Results {
			_, dup := byID[r.ID]
			require.False(t, dup, "two results for task %d", r.ID)
			byID[r.ID] = r
		}
	}
	out := make([]wire.Result, len(tasks))
	for i, tk := range tasks {
		r, ok := byID[tk.ID]
		require.True(t, ok, "no result for task %d", tk.ID)
		out[i] = r
	}
	return out
}

// exportsBatch reports whether the fixture called name exports
// safepool_batch: a worker then runs a batch through one call of it.
func exportsBatch(t *testing.T, name string) bool {
	t.Helper()
	info := module.Describe(testguest.Bytes(t, name))
	require.NotNil(t, info, "%s does not parse", name)
	return slices.ContainsFunc(info.Exports, func(f module.Func) bool { return f.Name == "safepool_batch" })
}

func one(t *testing.T, wk *hostconn.Conn, fn, in string) wire.Result {
	t.Helper()
	return run(t, wk, task(fn, in))[0]
}
