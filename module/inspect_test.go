package module_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/module"
)

// sentinels are the errors Inspect may wrap; every refusal wraps exactly one.
var sentinels = []error{
	module.ErrNotWasm, module.ErrInvalidModule, module.ErrForbiddenImport,
	module.ErrNotTaskModule, module.ErrNotReactor, module.ErrBadSignature, module.ErrMissingExport,
}

func TestInspectMalformed(t *testing.T) {
	for _, bad := range testguest.Malformed(t) {
		t.Run(bad.Name, func(t *testing.T) {
			info, err := module.Inspect(context.Background(), bad.Wasm)
			if bad.Is == nil {
				require.NoError(t, err, "well formed: only a worker can refuse it")
				require.Equal(t, module.KindSDK, info.Kind)
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
	const want = "module: a Go program built without -buildmode=c-shared (it exports _start and the safepool SDK's exports); " +
		"rebuild it with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared"
	wasm := testguest.Bytes(t, "sdkcmd")
	info, err := module.Inspect(context.Background(), wasm)
	require.Nil(t, info)
	require.ErrorIs(t, err, module.ErrNotReactor)
	require.EqualError(t, err, want)
}

func TestInspectGood(t *testing.T) {
	cases := map[string]module.Kind{
		"wsquare": module.KindSDK, "wtraps": module.KindSDK, "wgrow": module.KindSDK,
		"wcmd": module.KindCommand, "wescape": module.KindSDK, "wtable": module.KindSDK,
		"wbigmem": module.KindSDK, "wslowstart": module.KindSDK,
	}
	for name, kind := range cases {
		t.Run(name, func(t *testing.T) {
			info, err := module.Inspect(context.Background(), testguest.Bytes(t, name))
			require.NoError(t, err)
			require.Equal(t, kind, info.Kind)
		})
	}
	t.Run("Go guests", func(t *testing.T) {
		// Built by the Go toolchain, with its custom sections: the checks
		// on counts must pass real modules.
		for _, name := range []string{"tasks", "upper"} {
			_, err := module.Inspect(context.Background(), testguest.Bytes(t, name))
			require.NoError(t, err, name)
		}
	})
	t.Run("built module", func(t *testing.T) {
		info, err := module.Inspect(context.Background(), testguest.SDK().Encode())
		require.NoError(t, err)
		require.Equal(t, module.KindSDK, info.Kind)
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
		_, err := module.Inspect(context.Background(), m.Encode())
		require.NoError(t, err)
	})
}
