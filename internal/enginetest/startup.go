package enginetest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/hostconn"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/internal/wire"
)

// taskTimeoutSparesStartUp: a Go guest's _initialize takes milliseconds,
// and a task's timeout, however short, covers only the task's own call. The
// worker starts, and so does every instance it makes after a timeout broke
// the last one (after each task, with FreshInstance), so that each task is
// stopped by its own deadline rather than failed at start-up.
func taskTimeoutSparesStartUp(t *testing.T, eng string) {
	for _, timeout := range []time.Duration{time.Microsecond, time.Millisecond, 5 * time.Millisecond} {
		for _, fresh := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s fresh=%t", timeout, fresh), func(t *testing.T) {
				wk := startWorker(t, eng, "tasks", func(i *wire.Init) {
					i.Timeout, i.FreshInstance = timeout, fresh
				})
				require.Contains(t, wk.Ready().Handlers, "spin")
				// One batch: without FreshInstance the worker drives it
				// through safepool_batch, and runs what follows a
				// timeout on a new instance.
				rs := run(t, wk, task("spin", ""), task("spin", ""), task("spin", ""))
				for i, r := range rs {
					require.Equal(t, wire.StatusTimeout, r.Status, "task %d: %s", i, r.Error)
					require.Equal(t, fmt.Sprintf("task ran past its timeout of %s and was stopped", timeout), r.Error)
				}
			})
		}
	}
}

func startTimeout(t *testing.T, eng string) {
	t.Run("at the handshake", func(t *testing.T) {
		for _, tc := range []struct {
			module  string
			timeout time.Duration
		}{
			{"tasks", time.Microsecond},            // a Go guest's _initialize takes milliseconds
			{"wslowstart", 100 * time.Millisecond}, // never returns under a cap it can grow in
		} {
			t.Run(tc.module, func(t *testing.T) {
				init := wire.Init{Engine: eng, ModulePath: testguest.Path(t, tc.module), CacheDir: CacheDir(t),
					MemoryLimit: testCap, LogLimit: 64 << 10, StartTimeout: tc.timeout}
				precompile(t, &init)
				_, err := hostconn.Start(hostconn.Config{Init: init})
				require.ErrorIs(t, err, hostconn.ErrStart)
				require.ErrorContains(t, err, fmt.Sprintf(
					"sandbox: the module's _initialize ran past the start timeout of %s and was stopped; raise the pool's StartTimeout", tc.timeout))
			})
		}
	})
	t.Run("when a task needs a new instance", func(t *testing.T) {
		// Under a cap of one page wslowstart starts at once. A task with
		// a larger cap needs an instance of its own, whose start-up never
		// ends: that task fails, and the worker goes on.
		wk := startWorker(t, eng, "wslowstart", func(i *wire.Init) {
			i.MemoryLimit, i.StartTimeout = 64<<10, 100*time.Millisecond
		})
		big := task("ok", "")
		big.MemoryLimit = testCap
		rs := run(t, wk, task("ok", ""), big, task("ok", ""))
		require.Equal(t, wire.StatusOK, rs[0].Status, rs[0].Error)
		require.Equal(t, wire.StatusError, rs[1].Status)
		require.Equal(t, "sandbox: the module's _initialize ran past the start timeout of 100ms and was stopped; raise the pool's StartTimeout", rs[1].Error)
		require.Equal(t, wire.StatusOK, rs[2].Status, rs[2].Error)
		require.Equal(t, "ok", string(rs[2].Output))
	})
}

func memoryNeededAtStart(t *testing.T, eng string) {
	t.Run("above the worker's cap", func(t *testing.T) {
		// An SDK module, and a command built in code: both are refused
		// at the handshake, before any instance is made.
		cmd := filepath.Join(t.TempDir(), "cmd.wasm")
		require.NoError(t, os.WriteFile(cmd, testguest.Module{Funcs: []testguest.Func{{Export: "_start"}}, Memory: 1280}.Encode(), 0o644))
		for _, module := range []string{testguest.Path(t, "wbigmem"), cmd} {
			_, err := hostconn.Start(hostconn.Config{Init: wire.Init{Engine: eng, ModulePath: module, MemoryLimit: testCap}})
			require.ErrorIs(t, err, hostconn.ErrStart)
			require.ErrorContains(t, err, "sandbox: the module needs 80 MiB of linear memory just to start (its memory's minimum is 1280 pages), "+
				"above the memory cap of 64 MiB; raise MemoryLimit (--memory) to at least 80 MiB")
		}
	})
	t.Run("above a task's cap", func(t *testing.T) {
		wk := startWorker(t, eng, "wbigmem", func(i *wire.Init) { i.MemoryLimit = 128 << 20 })
		small := task("ok", "")
		small.MemoryLimit = testCap
		rs := run(t, wk, task("ok", ""), small, task("ok", ""))
		require.Equal(t, wire.StatusOK, rs[0].Status, rs[0].Error)
		require.Equal(t, wire.StatusMemoryLimit, rs[1].Status)
		require.Equal(t, "the module needs 80 MiB of linear memory just to start (its memory's minimum is 1280 pages), above the task's memory cap of 64 MiB", rs[1].Error)
		require.Equal(t, wire.StatusOK, rs[2].Status, rs[2].Error)
	})
}

// initializeNeedsMoreMemory: a Go guest's memory starts under 3 MiB,
// but its runtime's _initialize grows it past that.
func initializeNeedsMoreMemory(t *testing.T, eng string) {
	init := wire.Init{Engine: eng, ModulePath: testguest.Path(t, "tasks"), CacheDir: CacheDir(t), MemoryLimit: 3 << 20, LogLimit: 64 << 10}
	precompile(t, &init)
	_, err := hostconn.Start(hostconn.Config{Init: init})
	require.ErrorIs(t, err, hostconn.ErrStart)
	first, _, _ := strings.Cut(err.Error(), "\n")
	require.True(t, strings.HasSuffix(first, "sandbox: the module's _initialize needs more than the memory cap of 3 MiB; raise MemoryLimit (--memory)"), "first line: %q", first)
}
