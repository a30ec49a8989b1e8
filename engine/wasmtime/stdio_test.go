//go:build cgo

package wasmtime_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	wasmtimego "github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/engine/wasmtime"
	"github.com/safepool/safepool/internal/engine"
)

// newWriter instantiates a module whose _start writes n bytes to fd 2 in
// one fd_write (none when n is 0), with log as the instance's log. With
// dir, the instance is granted a directory, so its stdio is WASI's,
// through pipes.
func newWriter(tb testing.TB, n int, log *bytes.Buffer, dir bool) engine.Guest {
	tb.Helper()
	wasm, err := wasmtimego.Wat2Wasm(fmt.Sprintf(`(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 40)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const %d))
    (if (i32.gt_u (i32.const %d) (i32.const 0))
      (then (drop (call $w (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 16)))))))`, n, n))
	require.NoError(tb, err)
	c, _, err := wasmtime.Engine{}.Load(context.Background(), wasm, "", engine.Options{})
	require.NoError(tb, err)
	tb.Cleanup(c.Close)
	h := &engine.Host{Limit: 64 << 20, Log: log, Interrupted: func() bool { return false }}
	if dir {
		h.Grants.Dirs = []engine.GrantedDir{{HostPath: tb.TempDir(), GuestPath: "/d"}}
	}
	g, err := c.Instantiate(context.Background(), h)
	require.NoError(tb, err)
	tb.Cleanup(g.Close)
	return g
}

// TestStdioWholeWhenCallReturns: a write larger than a pipe holds (64 KiB)
// is wholly in the log when the call that made it returns, with the
// engine's stdio and with WASI's through pipes: the log is complete per
// call, not some time later.
func TestStdioWholeWhenCallReturns(t *testing.T) {
	for _, dir := range []bool{false, true} {
		t.Run(fmt.Sprintf("dir=%v", dir), func(t *testing.T) {
			var log bytes.Buffer
			g := newWriter(t, 1<<20, &log, dir)
			for i := 1; i <= 2; i++ {
				_, err := g.Call(context.Background(), engine.ExportStart)
				require.NoError(t, err)
				require.Equal(t, i<<20, log.Len(), "after call %d", i)
			}
		})
	}
}

// BenchmarkCall is the cost of one call into the guest, the stdio flush
// included: quiet writes nothing, write16 writes 16 bytes to stderr; dir
// grants a directory, so stdio goes through WASI and pipes.
func BenchmarkCall(b *testing.B) {
	for _, c := range []struct {
		n   int
		dir bool
	}{{0, false}, {16, false}, {0, true}, {16, true}} {
		name := "quiet"
		if c.n > 0 {
			name = fmt.Sprintf("write%d", c.n)
		}
		if c.dir {
			name += "/dir"
		}
		b.Run(name, func(b *testing.B) {
			var log bytes.Buffer
			g := newWriter(b, c.n, &log, c.dir)
			for b.Loop() {
				if _, err := g.Call(context.Background(), engine.ExportStart); err != nil {
					b.Fatal(err)
				}
				log.Reset()
			}
		})
	}
}
