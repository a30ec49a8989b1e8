package sandbox_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/internal/enginetest"
	"github.com/safepool/safepool/internal/hostconn"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/internal/wire"
	_ "github.com/safepool/safepool/sandbox" // its init turns re-executed test binaries into workers
)

// TestConformance runs the worker-level conformance suite on the default
// engine. The wasmtime module runs it, and the pool-level cases, on
// wasmtime (engine/wasmtime/conformance_test.go).
func TestConformance(t *testing.T) {
	enginetest.Worker(t, engine.Wazero)
}

// TestEngineChoice: a worker asked for an engine it does not have fails its
// start with the registry's message.
func TestEngineChoice(t *testing.T) {
	start := func(eng string) error {
		wk, err := hostconn.Start(hostconn.Config{Init: wire.Init{Engine: eng, ModulePath: testguest.Path(t, "wsquare"), MemoryLimit: 64 << 20}})
		if err == nil {
			wk.Kill()
			wk.Release()
		}
		return err
	}
	require.NoError(t, start(""), "the empty name is the default engine")
	err := start("v8")
	require.ErrorIs(t, err, hostconn.ErrStart)
	require.ErrorContains(t, err, `engine: unknown engine "v8"; use wazero or wasmtime`)

	require.False(t, slices.Contains(engine.Names(), engine.Wasmtime), "this test binary does not import the wasmtime engine")
	err = start(engine.Wasmtime)
	require.ErrorIs(t, err, hostconn.ErrStart)
	require.ErrorContains(t, err, `engine: wasmtime is not built into this binary; add import _ "github.com/safepool/safepool/engine/wasmtime" to the program`)
}
