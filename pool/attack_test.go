package pool_test

import (
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/pool"
)

// attack is one hostile task: what it runs, and how it must end.
type attack struct {
	name, fn, in string
	status       pool.Status
	errText      string // in Result.Error
}

// runAttacks runs each attack as a one-task map while a map of good tasks
// runs beside it, and checks both: the attack gets its status, and the pool
// keeps serving everyone else.
func runAttacks(t *testing.T, p *pool.Pool, good string, attacks []attack) {
	t.Helper()
	ctx := context.Background()
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			others, err := p.MapAsync(ctx, good, ints(200))
			require.NoError(t, err)
			r, err := p.Apply(ctx, a.fn, []byte(a.in))
			require.NoError(t, err, "skip is the default for every status")
			require.Equal(t, a.status, r.Status, "error: %s", r.Error)
			require.Contains(t, r.Error, a.errText)
			require.Nil(t, r.Output)
			rs, err := others.Wait(ctx)
			require.NoError(t, err)
			for i, o := range rs {
				require.Equal(t, strconv.Itoa(i*i), string(o.Output), "a task beside the attack: %s", o.Error)
			}
		})
	}
}

func TestResourceAttacks(t *testing.T) {
	t.Run("Go guest", func(t *testing.T) {
		p := newPool(t, "tasks", func(c *pool.Config) {
			c.MemoryLimit = 32 << 20
			c.Timeout = 2 * time.Second
			c.OutputLimit = 1 << 20
			c.LogLimit = 4 << 10
		})
		runAttacks(t, p, "square", []attack{
			{"allocates without end", "memhog", "1000000", pool.StatusMemoryLimit, "memory limit of 32 MiB reached"},
			{"sleeps through a WASI clock", "sleep", "3600000", pool.StatusTimeout, "timeout of 2s"},
			{"huge output", "big", "4096", pool.StatusError, "over the output cap of 1 MiB"},
			{"proc_exit(0) mid-task", "exit", "0", pool.StatusError, "guest exited with code 0"},
			{"proc_exit(7) mid-task", "exit", "7", pool.StatusError, "guest exited with code 7"},
		})
		t.Run("stderr flood", func(t *testing.T) {
			r, err := p.Apply(context.Background(), "stderr", []byte("8192")) // 8 MiB
			require.NoError(t, err)
			require.Equal(t, pool.StatusOK, r.Status, r.Error)
			require.Len(t, r.Log, 4<<10, "only the tail of stderr is kept")
			require.Equal(t, strings.Repeat("e", 4<<10), string(r.Log))
		})
		require.Len(t, p.KilledTasks(), 2, "memory_limit and timeout are killed tasks; errors are not")
	})
	t.Run("WAT guests", func(t *testing.T) {
		// A non-Go module that grows its memory in a loop.
		p := newPool(t, "wgrow", func(c *pool.Config) { c.MemoryLimit = 16 << 20 })
		r, err := p.Apply(context.Background(), "grow", nil)
		require.NoError(t, err)
		require.Equal(t, pool.StatusMemoryLimit, r.Status, r.Error)
		require.Equal(t, int64(16<<20), r.Stats.PeakMemory)
		r, err = p.Apply(context.Background(), "ok", nil)
		require.NoError(t, err)
		require.Equal(t, "ok", string(r.Output))

		p = newPool(t, "wtraps", nil)
		for fn, msg := range map[string]string{
			"overflow": "stack overflow", "unreachable": "unreachable", "divzero": "integer divide by zero",
		} {
			rs, err := p.Map(context.Background(), fn, make([][]byte, 3))
			require.NoError(t, err)
			for _, r := range rs {
				require.Equal(t, pool.StatusError, r.Status, fn)
				require.Contains(t, r.Error, msg, fn)
			}
		}
		rs, err := p.Map(context.Background(), "ok", make([][]byte, 3))
		require.NoError(t, err)
		for _, r := range rs {
			require.Equal(t, "ok", string(r.Output))
		}

		p = newPool(t, "wescape", func(c *pool.Config) { c.Timeout = 300 * time.Millisecond })
		for _, a := range []attack{
			{"infinite loop", "loop", "", pool.StatusTimeout, "timeout of 300ms"},
			{"sleeps through a WASI clock", "sleep", "", pool.StatusTimeout, "timeout of 300ms"},
			// Returning right after the watchdog woke it is still too late,
			// and the next sleep waits again (a fresh instance).
			{"sleeps through a WASI clock again", "sleep", "", pool.StatusTimeout, "timeout of 300ms"},
			{"proc_exit(0) mid-task", "exit", "\x00", pool.StatusError, "guest exited with code 0"},
			{"proc_exit(3) mid-task", "exit", "\x03", pool.StatusError, "guest exited with code 3"},
		} {
			start := time.Now()
			r, err := p.Apply(context.Background(), a.fn, []byte(a.in))
			require.NoError(t, err)
			require.Equal(t, a.status, r.Status, "%s: %s", a.name, r.Error)
			require.Contains(t, r.Error, a.errText, a.name)
			require.Less(t, time.Since(start), 5*time.Second, "%s: stopped too late", a.name)
			r, err = p.Apply(context.Background(), "ok", nil)
			require.NoError(t, err)
			require.Equal(t, "ok", string(r.Output), "after %s", a.name)
		}
	})
}

// TestMemoryBackstop makes the worker itself allocate outside linear
// memory, where the memory cap does not reach: each table.grow entry costs
// the worker 8 bytes of its own heap, and wtable asks for a billion entries
// (8 GiB) at once. Only the worker's address-space limit stops it: the Go
// runtime in the worker fails to map the memory and exits, the host reports
// the task killed, and the machine never sees the 8 GiB.
func TestMemoryBackstop(t *testing.T) {
	if raceDetector {
		t.Skip("under -race the pool sets no address-space limit, and this test would ask the machine for 8 GiB")
	}
	p := newPool(t, "wtable", func(c *pool.Config) { c.Workers = 1 })
	step := make([]byte, 4)
	binary.LittleEndian.PutUint32(step, 1<<30)
	rs, err := p.Map(context.Background(), "grow", [][]byte{step})
	require.NoError(t, err)
	require.Equal(t, pool.StatusKilled, rs[0].Status, rs[0].Error)
	require.Contains(t, rs[0].Error, "exited with code 2", "the Go runtime's out-of-memory exit")
	kts := p.KilledTasks()
	require.Len(t, kts, 1)
	require.Equal(t, 2, kts[0].ExitCode)
	require.Empty(t, kts[0].Signal)
	// A new worker serves the next task.
	r, err := p.Apply(context.Background(), "size", nil)
	require.NoError(t, err)
	require.Equal(t, "1", string(r.Output), "a fresh instance")
	require.NotEqual(t, rs[0].Stats.WorkerPID, r.Stats.WorkerPID)
}
