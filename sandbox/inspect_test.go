package sandbox_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/sandbox"
)

// sentinels are the errors Inspect may wrap; every refusal wraps exactly one.
var sentinels = []error{
	sandbox.ErrNotWasm, sandbox.ErrInvalidModule, sandbox.ErrForbiddenImport,
	sandbox.ErrNotTaskModule, sandbox.ErrNotReactor, sandbox.ErrBadSignature, sandbox.ErrMissingExport,
}

func TestInspectMalformed(t *testing.T) {
	for _, bad := range testguest.Malformed(t) {
		t.Run(bad.Name, func(t *testing.T) {
			info, err := sandbox.Inspect(context.Background(), bad.Wasm)
			if bad.Is == nil {
				require.NoError(t, err, "well formed: only a worker can refuse it")
				require.Equal(t, sandbox.KindSDK, info.Kind)
				return
			}
			require.Nil(t, info)
			require.ErrorIs(t, err, bad.Is)
			require.ErrorContains(t, err, bad.Want)
			n := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			require.Equal(t, 1, n, "wraps exactly one sentinel: %v", err)
		})
	}
}

// TestInspectGoCommand: the SDK built without -buildmode=c-shared exports
// _start beside the SDK's exports; it is refused at load with the command
// that builds it right, before any worker traps on it.
func TestInspectGoCommand(t *testing.T) {
	const want = "sandbox: module is a Go program built without -buildmode=c-shared (it exports _start and the safepool SDK's exports); " +
		"rebuild it with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared"
	wasm := testguest.Bytes(t, "sdkcmd")
	info, err := sandbox.Inspect(context.Background(), wasm)
	require.Nil(t, info)
	require.ErrorIs(t, err, sandbox.ErrNotReactor)
	require.EqualError(t, err, want)

	_, err = sandbox.Prepare(context.Background(), "", wasm, t.TempDir())
	require.ErrorIs(t, err, sandbox.ErrNotReactor)
	require.EqualError(t, err, want)
}

func TestInspectGood(t *testing.T) {
	cases := map[string]sandbox.Kind{
		"wsquare": sandbox.KindSDK, "wtraps": sandbox.KindSDK, "wgrow": sandbox.KindSDK,
		"wcmd": sandbox.KindCommand, "wescape": sandbox.KindSDK, "wtable": sandbox.KindSDK,
		"wbigmem": sandbox.KindSDK, "wslowstart": sandbox.KindSDK,
	}
	for name, kind := range cases {
		t.Run(name, func(t *testing.T) {
			info, err := sandbox.Inspect(context.Background(), testguest.Bytes(t, name))
			require.NoError(t, err)
			require.Equal(t, kind, info.Kind)
		})
	}
	t.Run("Go guests", func(t *testing.T) {
		// Built by the Go toolchain, with its custom sections: the checks
		// on counts must pass real modules.
		for _, name := range []string{"tasks", "upper"} {
			_, err := sandbox.Inspect(context.Background(), testguest.Bytes(t, name))
			require.NoError(t, err, name)
		}
	})
	t.Run("built module", func(t *testing.T) {
		info, err := sandbox.Inspect(context.Background(), testguest.SDK().Encode())
		require.NoError(t, err)
		require.Equal(t, sandbox.KindSDK, info.Kind)
		require.False(t, info.Batch)
	})
	t.Run("every WASI function with its real type", func(t *testing.T) {
		// A module may import any WASI preview 1 function the worker
		// provides; the check must not refuse real ones.
		m := testguest.SDK()
		m.Imports = append(m.Imports,
			testguest.Import{Module: "wasi_snapshot_preview1", Name: "fd_write", Params: []byte{testguest.I32, testguest.I32, testguest.I32, testguest.I32}, Results: []byte{testguest.I32}},
			testguest.Import{Module: "wasi_snapshot_preview1", Name: "proc_exit", Params: []byte{testguest.I32}},
			testguest.Import{Module: "wasi_snapshot_preview1", Name: "clock_time_get", Params: []byte{testguest.I32, testguest.I64, testguest.I32}, Results: []byte{testguest.I32}},
			testguest.Import{Module: "wasi_snapshot_preview1", Name: "sock_accept", Params: []byte{testguest.I32, testguest.I32, testguest.I32}, Results: []byte{testguest.I32}},
		)
		_, err := sandbox.Inspect(context.Background(), m.Encode())
		require.NoError(t, err)
	})
}

// TestPrepareChecksAsInspect: Prepare, which checks the module it compiled
// into the cache instead of decoding it again, refuses every module Inspect
// refuses, with the same sentinel, and marks only good modules prepared.
func TestPrepareChecksAsInspect(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, bad := range testguest.Malformed(t) {
		t.Run(bad.Name, func(t *testing.T) {
			info, err := sandbox.Prepare(ctx, "", bad.Wasm, dir)
			if bad.Is == nil {
				require.NoError(t, err)
				require.Equal(t, sandbox.KindSDK, info.Kind)
				require.True(t, sandbox.Prepared("", bad.Wasm, dir))
				return
			}
			require.ErrorIs(t, err, bad.Is)
			require.ErrorContains(t, err, bad.Want)
			require.False(t, sandbox.Prepared("", bad.Wasm, dir), "a refused module is never marked prepared")
		})
	}
}

func TestPrepared(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	wasm := testguest.Bytes(t, "wsquare")
	require.False(t, sandbox.Prepared("", wasm, dir), "nothing prepared yet")
	require.False(t, sandbox.Prepared("", wasm, ""), "no cache: never prepared")

	info, err := sandbox.Prepare(ctx, "", wasm, dir)
	require.NoError(t, err)
	require.Equal(t, sandbox.KindSDK, info.Kind)
	require.True(t, info.Batch)
	require.True(t, sandbox.Prepared("", wasm, dir))
	require.True(t, sandbox.Prepared(sandbox.EngineWazero, wasm, dir), `"" is wazero`)
	require.False(t, sandbox.Prepared("wasmtime", wasm, dir), "prepared for one engine only")
	require.False(t, sandbox.Prepared("", testguest.Bytes(t, "wcmd"), dir), "another module is not prepared")

	require.NoError(t, sandbox.ForgetCompiled(wasm, dir))
	require.False(t, sandbox.Prepared("", wasm, dir), "forgetting the entry forgets the mark")

	// Without a cache there is nothing to fill: Prepare only checks.
	info, err = sandbox.Prepare(ctx, "", wasm, "")
	require.NoError(t, err)
	require.Equal(t, sandbox.KindSDK, info.Kind)
	_, err = sandbox.Prepare(ctx, "no-such-engine", wasm, dir)
	require.ErrorIs(t, err, sandbox.ErrUnknownEngine)
}
