package engine_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/engine"
	_ "github.com/safepool/safepool/internal/engine/wazero"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/module"
)

// TestPrepareChecksAsInspect: Prepare, which checks the module it compiled
// into the cache instead of decoding it again, refuses every module Inspect
// refuses, with the same sentinel, and marks only good modules prepared.
func TestPrepareChecksAsInspect(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, bad := range testguest.Malformed(t) {
		t.Run(bad.Name, func(t *testing.T) {
			info, err := engine.Prepare(ctx, "", bad.Wasm, dir, engine.Options{})
			if bad.Is == nil {
				require.NoError(t, err)
				require.Equal(t, module.KindSDK, info.Kind)
				require.True(t, engine.Prepared("", bad.Wasm, dir, engine.Options{}))
				return
			}
			require.ErrorIs(t, err, bad.Is)
			require.ErrorContains(t, err, bad.Want)
			require.False(t, engine.Prepared("", bad.Wasm, dir, engine.Options{}), "a refused module is never marked prepared")
		})
	}
}

func TestPrepared(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	wasm := testguest.Bytes(t, "wsquare")
	require.False(t, engine.Prepared("", wasm, dir, engine.Options{}), "nothing prepared yet")
	require.False(t, engine.Prepared("", wasm, "", engine.Options{}), "no cache: never prepared")

	info, err := engine.Prepare(ctx, "", wasm, dir, engine.Options{})
	require.NoError(t, err)
	require.Equal(t, module.KindSDK, info.Kind)
	require.True(t, info.Batch)
	require.True(t, engine.Prepared("", wasm, dir, engine.Options{}))
	require.True(t, engine.Prepared(engine.Wazero, wasm, dir, engine.Options{}), `"" is wazero`)
	require.False(t, engine.Prepared("", testguest.Bytes(t, "wcmd"), dir, engine.Options{}), "another module is not prepared")

	require.NoError(t, engine.Forget("", wasm, dir, engine.Options{}))
	require.False(t, engine.Prepared("", wasm, dir, engine.Options{}), "forgetting the entry forgets the mark")

	// Without a cache there is nothing to fill: Prepare only checks.
	info, err = engine.Prepare(ctx, "", wasm, "", engine.Options{})
	require.NoError(t, err)
	require.Equal(t, module.KindSDK, info.Kind)
	_, err = engine.Prepare(ctx, "no-such-engine", wasm, dir, engine.Options{})
	require.ErrorIs(t, err, engine.ErrUnknown)
}

// TestPrepareGoCommand: Prepare refuses a Go SDK module built as a command
// with Inspect's error, though it checks the module it compiled.
func TestPrepareGoCommand(t *testing.T) {
	wasm := testguest.Bytes(t, "sdkcmd")
	_, want := module.Inspect(context.Background(), wasm)
	require.ErrorIs(t, want, module.ErrNotReactor)
	_, err := engine.Prepare(context.Background(), "", wasm, t.TempDir(), engine.Options{})
	require.ErrorIs(t, err, module.ErrNotReactor)
	require.EqualError(t, err, want.Error())
}
