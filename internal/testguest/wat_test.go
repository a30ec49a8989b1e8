package testguest_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/safepool/safepool/internal/testguest"
)

// Both SDK implementations, Go and hand-written WAT, must answer the same
// questions the same way through both entry points.
func TestSquareConformance(t *testing.T) {
	cases := []struct{ in, out string }{
		{"7", "49"},
		{"-3", "9"},
		{"0", "0"},
		{"3037000499", "9223372030926249001"},
	}
	for _, name := range []string{"tasks", "wsquare"} {
		t.Run(name, func(t *testing.T) {
			in := loadSDK(t, name, hostOptions{})
			var batch []task
			var want []outcome
			for _, tc := range cases {
				require.Equal(t, ok(tc.out), in.mustCall("square", tc.in), "square(%s)", tc.in)
				batch = append(batch, task{"square", tc.in})
				want = append(want, ok(tc.out))
			}
			got, err := in.batch(batch...)
			require.NoError(t, err)
			require.Equal(t, want, got)

			o := in.mustCall("nope", "")
			require.Equal(t, uint32(statusUnknown), o.Status)
			require.Regexp(t, `^unknown function "nope"; this module has: .*\bsquare\b`, o.Data)
		})
	}
}

func TestWSquare(t *testing.T) {
	in := loadSDK(t, "wsquare", hostOptions{})
	require.Equal(t, []string{"square"}, in.handlers())

	const notInt = "square: input is not a decimal integer"
	cases := []struct {
		name, fn, in string
		want         outcome
	}{
		{"white space", "square", " 12\n", ok("144")},
		{"empty", "square", "", failed(notInt)},
		{"only a sign", "square", "-", failed(notInt)},
		{"letters", "square", "7x", failed(notInt)},
		{"wraps like int64", "square", "4294967296", ok("0")},
		{"negative when wrapped", "square", "3037000500", ok("-9223372036709301616")},
		{"unknown", "cube", "2", unknown(`unknown function "cube"; this module has: square`)},
		{"still fine", "square", "11", ok("121")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, in.mustCall(tc.fn, tc.in))
		})
	}

	t.Run("batch", func(t *testing.T) {
		got, err := in.batch(task{"square", "2"}, task{"cube", ""}, task{"square", "x"}, task{"square", "-5"})
		require.NoError(t, err)
		require.Equal(t, []outcome{
			ok("4"),
			unknown(`unknown function "cube"; this module has: square`),
			failed(notInt),
			ok("25"),
		}, got)
	})
	t.Run("malformed batch", func(t *testing.T) {
		got, err := in.batchRaw([]byte{6, 0, 0, 0, 's', 'q', 'u', 'a', 'r', 'e', 9, 0, 0, 0, '1'})
		require.NoError(t, err)
		require.Equal(t, []outcome{failed("malformed batch: a record runs past the end of the batch")}, got)
	})
}

func TestWTraps(t *testing.T) {
	in := loadSDK(t, "wtraps", hostOptions{})
	require.Equal(t, []string{"divzero", "ok", "overflow", "unreachable"}, in.handlers())

	for fn, want := range map[string]string{
		"unreachable": "wasm error: unreachable",
		"divzero":     "wasm error: integer divide by zero",
		"overflow":    "stack overflow",
	} {
		t.Run(fn, func(t *testing.T) {
			// A trapped instance is broken by contract; use a fresh one.
			in := loadSDK(t, "wtraps", hostOptions{})
			_, err := in.call(in.ctx, fn, nil)
			require.ErrorContains(t, err, want)
		})
	}

	t.Run("a trap in a batch comes after the results before it", func(t *testing.T) {
		got, err := in.batch(task{"ok", ""}, task{"ok", ""}, task{"unreachable", ""}, task{"ok", ""})
		require.ErrorContains(t, err, "unreachable")
		require.Equal(t, []outcome{ok("ok"), ok("ok")}, got)
	})
}

func TestWGrow(t *testing.T) {
	const capPages = 32 // 2 MiB
	in := loadSDK(t, "wgrow", hostOptions{memoryPages: capPages})
	require.Equal(t, []string{"grow", "ok"}, in.handlers())
	require.Nil(t, in.fn("safepool_batch"), "wgrow is the fixture without safepool_batch")
	require.Equal(t, ok("ok"), in.mustCall("ok", ""))
	require.Equal(t, unknown(`unknown function "x"; this module has: grow, ok`), in.mustCall("x", ""))

	_, err := in.call(in.ctx, "grow", nil)
	require.ErrorContains(t, err, "unreachable")
	require.Equal(t, uint32(capPages*65536), in.mod.Memory().Size())
}

// compile compiles a fixture without instantiating it.
func compile(t *testing.T, name string) wazero.CompiledModule {
	t.Helper()
	rt := wazero.NewRuntime(t.Context())
	t.Cleanup(func() { rt.Close(t.Context()) })
	c, err := rt.CompileModule(t.Context(), testguest.Bytes(t, name))
	require.NoError(t, err)
	return c
}

func TestWBadImport(t *testing.T) {
	var imports []string
	for _, f := range compile(t, "wbadimport").ImportedFunctions() {
		mod, name, _ := f.Import()
		imports = append(imports, mod+"."+name)
	}
	require.Equal(t, []string{"env.foo"}, imports)

	// A host without an env module cannot instantiate it.
	in := load(t, "wbadimport", hostOptions{})
	require.Nil(t, in.mod)
	require.ErrorContains(t, in.initErr, "module[env] not instantiated")
}

func TestWNoExport(t *testing.T) {
	exports := compile(t, "wnoexport").ExportedFunctions()
	require.NotContains(t, exports, "_start")
	require.NotContains(t, exports, "safepool_abi_version")
	require.NotContains(t, exports, "safepool_call")
}

func TestWBadSig(t *testing.T) {
	exports := compile(t, "wbadsig").ExportedFunctions()
	i32 := []api.ValueType{api.ValueTypeI32}
	require.Equal(t, i32, exports["safepool_abi_version"].ParamTypes())
	require.Equal(t, i32, exports["safepool_abi_version"].ResultTypes())
	require.Equal(t, i32, exports["safepool_call"].ParamTypes())
	require.Equal(t, i32, exports["safepool_call"].ResultTypes())
}
