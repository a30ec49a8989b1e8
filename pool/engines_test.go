package pool_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/internal/enginetest"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/pool"
)

// TestEngines runs the pool-level conformance suite on the default engine.
// The wasmtime module runs it on wasmtime (engine/wasmtime).
func TestEngines(t *testing.T) {
	enginetest.Pool(t, engine.Wazero)
}

// TestEngineConfig: an engine name the binary cannot run fails pool.New
// with ErrConfig and says what to do.
func TestEngineConfig(t *testing.T) {
	mod := testguest.Path(t, "wsquare")
	_, err := pool.New(context.Background(), pool.Config{Module: mod, Engine: "v8"})
	require.ErrorIs(t, err, pool.ErrConfig)
	require.ErrorIs(t, err, engine.ErrUnknown)
	require.ErrorContains(t, err, `"v8"; use wazero or wasmtime`)

	// This test binary does not import the wasmtime engine.
	_, err = pool.New(context.Background(), pool.Config{Module: mod, Engine: engine.Wasmtime, Workers: 1, CacheDir: cacheDir(t)})
	require.ErrorIs(t, err, pool.ErrConfig)
	require.True(t, errors.Is(err, engine.ErrUnavailable))
	require.ErrorContains(t, err, `engine: wasmtime is not built into this binary; add import _ "github.com/safepool/safepool/engine/wasmtime" to the program`)
}
