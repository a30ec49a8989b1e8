package enginetest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/hostconn"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/internal/wire"
)

// errorsAreOneLine: a result's error is one line that says what
// happened. What explains it (the guest's output, a Go runtime's dump, the
// wasm stack) is in the result's log.
func errorsAreOneLine(t *testing.T, eng string) {
	wk := startWorker(t, eng, "tasks", nil)
	t.Run("memory limit", func(t *testing.T) {
		r := one(t, wk, "memhog", "100")
		require.Equal(t, wire.StatusMemoryLimit, r.Status, r.Error)
		require.Equal(t, "memory limit of 64 MiB reached", r.Error)
		log := string(r.Log)
		require.Contains(t, log, "fatal error: out of memory", "the Go runtime's report")
		require.Contains(t, log, "goroutine ", "the Go runtime's dump")
		require.Contains(t, log, "wasm error: unreachable\nwasm stack trace:\n\t", "the trap that followed, and where")
	})
	t.Run("panic", func(t *testing.T) {
		r := one(t, wk, "panic", "")
		require.Equal(t, wire.StatusError, r.Status)
		require.Equal(t, "panic: kaboom", r.Error)
		require.Contains(t, string(r.Log), "panic: kaboom\n\ngoroutine ", "the panic's stack")
		require.Contains(t, string(r.Log), "main.init", "the stack names the handler")
	})
	t.Run("error of several lines", func(t *testing.T) {
		r := one(t, wk, "fail", "first\nsecond")
		require.Equal(t, wire.StatusError, r.Status)
		require.Equal(t, "boom: first", r.Error)
		require.Equal(t, "second\n", string(r.Log))
	})
	t.Run("returned error", func(t *testing.T) {
		r := one(t, wk, "fail", "x")
		require.Equal(t, "boom: x", r.Error)
		require.Empty(t, r.Log)
	})

	traps := startWorker(t, eng, "wtraps", nil)
	for fn, want := range map[string]string{
		"unreachable": "wasm error: unreachable",
		"divzero":     "wasm error: integer divide by zero",
		"overflow":    "wasm error: stack overflow", // wazero gives no stack for this one
	} {
		t.Run(fn, func(t *testing.T) {
			r := one(t, traps, fn, "")
			require.Equal(t, wire.StatusError, r.Status)
			require.Equal(t, want, r.Error)
			if fn != "overflow" {
				require.True(t, strings.HasPrefix(string(r.Log), "wasm stack trace:\n\t"), "log: %q", r.Log)
			}
		})
	}
}

// memoryLimitSizes: caps are written for people, exactly.
func memoryLimitSizes(t *testing.T, eng string) {
	wk := startWorker(t, eng, "wgrow", nil)
	for limit, want := range map[uint64]string{
		64 << 20:      "memory limit of 64 MiB reached",
		640 << 10:     "memory limit of 640 KiB reached",
		3 << 19:       "memory limit of 1.5 MiB reached",
		100000:        "memory limit of 100000 bytes reached",
		1<<20 + 1<<18: "memory limit of 1.25 MiB reached",
	} {
		t.Run(want, func(t *testing.T) {
			tk := task("grow", "")
			tk.MemoryLimit = limit
			r := run(t, wk, tk)[0]
			require.Equal(t, wire.StatusMemoryLimit, r.Status, r.Error)
			require.Equal(t, want, r.Error)
		})
	}
}

// fatalFirstLine: a worker that cannot start says why on the first line
// of its message; the stack trace and the guest's output follow.
func fatalFirstLine(t *testing.T, eng string) {
	initTraps := testguest.SDK()
	initTraps.Funcs = append(initTraps.Funcs, testguest.Func{Export: "_initialize", Trap: true})
	handlersTrap := testguest.SDK()
	for i, f := range handlersTrap.Funcs {
		if f.Export == "safepool_handlers" {
			handlersTrap.Funcs[i].Trap = true
		}
	}
	cases := []struct {
		name  string
		m     testguest.Module
		first string
	}{
		{"_initialize traps", initTraps, "sandbox: the module's _initialize failed: wasm error: unreachable"},
		{"safepool_handlers traps", handlersTrap, "sandbox: safepool_handlers failed: wasm error: unreachable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "m.wasm")
			require.NoError(t, os.WriteFile(p, tc.m.Encode(), 0o644))
			_, err := hostconn.Start(hostconn.Config{Init: wire.Init{Engine: eng, ModulePath: p, MemoryLimit: testCap, LogLimit: 64 << 10}})
			require.ErrorIs(t, err, hostconn.ErrStart)
			first, rest, _ := strings.Cut(err.Error(), "\n")
			require.True(t, strings.HasSuffix(first, tc.first), "first line: %q", first)
			require.True(t, strings.HasPrefix(rest, "wasm stack trace:\n\t"), "rest: %q", rest)
		})
	}
}
