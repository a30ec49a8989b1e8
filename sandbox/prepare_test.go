package sandbox_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/module"
	"github.com/safepool/safepool/sandbox"
)

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
				require.Equal(t, module.KindSDK, info.Kind)
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
	require.Equal(t, module.KindSDK, info.Kind)
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
	require.Equal(t, module.KindSDK, info.Kind)
	_, err = sandbox.Prepare(ctx, "no-such-engine", wasm, dir)
	require.ErrorIs(t, err, sandbox.ErrUnknownEngine)
}

// TestPrepareGoCommand: Prepare refuses a Go SDK module built as a command
// with Inspect's error, though it checks the module it compiled.
func TestPrepareGoCommand(t *testing.T) {
	wasm := testguest.Bytes(t, "sdkcmd")
	_, want := module.Inspect(context.Background(), wasm)
	require.ErrorIs(t, want, module.ErrNotReactor)
	_, err := sandbox.Prepare(context.Background(), "", wasm, t.TempDir())
	require.ErrorIs(t, err, module.ErrNotReactor)
	require.EqualError(t, err, want.Error())
}
