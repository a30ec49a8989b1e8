package wazero

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/internal/guestbuild"
	"github.com/safepool/safepool/internal/testguest"
)

// statefulCompiled is sandbox/testdata/stateful, a guest that keeps state
// between tasks on purpose, compiled to be reset. Its tests share it:
// compiling a Go guest takes seconds, more under the race detector.
var statefulCompiled = sync.OnceValues(func() (engine.Compiled, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	p, err := guestbuild.BuildTo("sandbox/testdata/stateful", filepath.Join(cache, "safepool", "testguests"))
	if err != nil {
		return nil, err
	}
	wasm, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	// Through the compilation cache, so that only the first run compiles.
	opts := engine.Options{NoInterrupt: true, Resettable: true}
	c, _, err := Engine{}.Load(context.Background(), wasm, engine.Dir(filepath.Join(cache, "safepool", "test-compiled"), engine.Wazero, wasm, opts), opts)
	return c, err
})

func stateful(t testing.TB) engine.Compiled {
	t.Helper()
	c, err := statefulCompiled()
	require.NoError(t, err)
	return c
}

// testGuest is an instance of a loaded module with the helpers to run an
// SDK task on it.
type testGuest struct {
	t   testing.TB
	g   engine.Guest
	out []byte
}

func load(t *testing.T, path string, opts engine.Options) engine.Compiled {
	t.Helper()
	wasm := readFile(t, path)
	c, _, err := Engine{}.Load(context.Background(), wasm, "", opts)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func start(t testing.TB, c engine.Compiled) *testGuest {
	t.Helper()
	tg := &testGuest{t: t}
	h := &engine.Host{
		Limit: 64 << 20, Log: io.Discard,
		Sleep:       func(int64) bool { return true },
		Interrupted: func() bool { return false },
		Result:      func(_ uint32, b []byte) { tg.out = append([]byte(nil), b...) },
	}
	g, err := c.Instantiate(context.Background(), h)
	require.NoError(t, err)
	t.Cleanup(g.Close)
	_, err = g.Call(context.Background(), engine.ExportInitialize)
	require.NoError(t, err)
	tg.g = g
	return tg
}

// task runs the handler fn on in and returns its output.
func (tg *testGuest) task(fn, in string) string {
	tg.t.Helper()
	ctx := context.Background()
	n := len(fn) + len(in)
	ptr, err := tg.g.Call(ctx, engine.ExportAlloc, uint32(n))
	require.NoError(tg.t, err)
	buf, ok := tg.g.Memory(ptr, uint32(n))
	require.True(tg.t, ok)
	copy(buf, fn+in)
	tg.out = nil
	_, err = tg.g.Call(ctx, engine.ExportCall, ptr, uint32(len(fn)), ptr+uint32(len(fn)), uint32(len(in)))
	require.NoError(tg.t, err)
	return string(tg.out)
}

// TestResetForgetsTasks: after Reset, a guest sees none of what the task
// before left: neither a package variable nor a heap value, nor a
// goroutine it started. On an instance that is not reset it sees all of
// them, which is what makes the checks able to fail.
func TestResetForgetsTasks(t *testing.T) {
	c := stateful(t)

	t.Run("shared", func(t *testing.T) {
		g := start(t, c)
		require.Equal(t, "1 1", g.task("count", ""))
		require.Equal(t, "2 2", g.task("count", ""))
		require.Equal(t, "spawned", g.task("spawn", ""))
		require.NotEqual(t, "0", g.task("ticks", ""), "the goroutine runs in the next task")
	})

	g := start(t, c)
	r := g.g.(engine.Resetter)
	require.NoError(t, r.Snapshot())
	for range 5 {
		require.Equal(t, "1 1", g.task("count", ""))
		require.True(t, r.Reset())
	}
	require.Equal(t, "spawned", g.task("spawn", ""))
	require.True(t, r.Reset())
	require.Equal(t, "0", g.task("ticks", ""), "the goroutine left behind is gone")
	require.True(t, r.Reset())

	t.Run("memory that grew", func(t *testing.T) {
		require.Equal(t, "0", g.task("grow", "8"))
		require.False(t, r.Reset(), "a memory that grew cannot be reset")
		g := start(t, c)
		require.NoError(t, g.g.(engine.Resetter).Snapshot())
		require.Equal(t, "0", g.task("grow", "8"), "a new instance's memory is zero")
	})

	t.Run("WASI file table", func(t *testing.T) {
		g := start(t, c)
		r := g.g.(engine.Resetter)
		require.NoError(t, r.Snapshot())
		require.Equal(t, "closed", g.task("close", ""))
		require.False(t, r.Reset(), "a closed descriptor cannot be reopened")
	})
}

// TestResetRewindsClock: a reset sets the instance's monotonic clock back
// to its reading at the snapshot, so that a task on a reset instance finds
// as little time gone since the start-up as on a new one; within a task
// it moves on. Without a reset the time spent between two tasks shows.
func TestResetRewindsClock(t *testing.T) {
	const pause = 100 * time.Millisecond
	clock := func(g *testGuest) time.Duration {
		ns, err := strconv.ParseInt(g.task("clock", ""), 10, 64)
		require.NoError(t, err)
		return time.Duration(ns)
	}
	g := start(t, stateful(t))
	r := g.g.(engine.Resetter)
	require.NoError(t, r.Snapshot())

	first := clock(g)
	time.Sleep(pause)
	require.Greater(t, clock(g), first+pause, "without a reset the clock shows the pause")
	require.True(t, r.Reset())
	again := clock(g)
	require.Less(t, again, first+pause, "after a reset the pause is gone")
	time.Sleep(pause)
	require.Greater(t, clock(g), again+pause, "and the clock moves on from there")
}

// TestResetRefusals: what cannot be reset says so.
func TestResetRefusals(t *testing.T) {
	t.Run("not compiled to be reset", func(t *testing.T) {
		g := start(t, load(t, testguest.Path(t, "csquare"), engine.Options{NoInterrupt: true}))
		r := g.g.(engine.Resetter)
		require.ErrorContains(t, r.Snapshot(), "not compiled to be reset")
		require.False(t, r.Reset())
	})
	t.Run("no snapshot", func(t *testing.T) {
		g := start(t, stateful(t))
		require.False(t, g.g.(engine.Resetter).Reset())
	})
	t.Run("twice", func(t *testing.T) {
		g := start(t, stateful(t))
		r := g.g.(engine.Resetter)
		require.NoError(t, r.Snapshot())
		require.ErrorContains(t, r.Snapshot(), "already has a snapshot")
	})
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// BenchmarkReset compares the ways a reset finds the pages a task wrote,
// on a Go guest whose task ("count") writes a few of them: PAGEMAP_SCAN
// for the pages the kernel marks written (tracked, wptrack.go),
// PAGEMAP_SCAN for the present pages that are not the snapshot's (scan),
// and reading /proc/self/pagemap, 8 bytes per page of the memory
// (pagemap), with scans/reset the share of resets that scanned (see
// copyScanned); and with the guest's monotonic clock rewound by each reset
// (clock.go) and left real (real-clock), which the guest's runtime sees
// in its yield after each task. ns/op is a task and its reset; ns/reset
// the reset alone.
//
//	go test -run '^$' -bench Reset -benchtime 2000x ./internal/engine/wazero/
func BenchmarkReset(b *testing.B) {
	c := stateful(b)
	for _, mode := range []string{"tracked", "tracked/real-clock", "scan/real-clock", "pagemap/real-clock"} {
		find, clock, _ := strings.Cut(mode, "/")
		b.Run(mode, func(b *testing.B) {
			if find == "tracked" {
				requireWriteTracking(b)
			} else {
				withoutWriteTracking(b)
			}
			g := start(b, c)
			r := g.g.(engine.Resetter)
			require.NoError(b, r.Snapshot())
			gg := g.g.(*guest)
			if find != "pagemap" && !gg.cap.mem.scan {
				b.Skip("the kernel has no PAGEMAP_SCAN (Linux 6.7+)")
			}
			require.Equal(b, find == "tracked", gg.cap.mem.tracked)
			gg.cap.mem.scan = find != "pagemap"
			var inReset time.Duration
			for b.Loop() {
				g.task("count", "")
				t0 := time.Now()
				if !r.Reset() {
					b.Fatal("the instance could not be reset")
				}
				inReset += time.Since(t0)
				if clock == "real-clock" {
					gg.clock.shift.Store(0)
				}
			}
			b.ReportMetric(float64(inReset.Nanoseconds())/float64(b.N), "ns/reset")
			b.ReportMetric(float64(gg.cap.mem.scans)/float64(b.N), "scans/reset")
		})
	}
}
