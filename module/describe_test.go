package module_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/module"
)

// TestDescribe: a refused module is still listed, so that a report can show
// the import or export at fault; bytes that are not a module list nothing.
func TestDescribe(t *testing.T) {
	t.Run("refused import", func(t *testing.T) {
		wasm := testguest.Bytes(t, "wbadimport")
		_, err := module.Inspect(context.Background(), wasm)
		require.ErrorIs(t, err, module.ErrForbiddenImport)
		d := module.Describe(wasm)
		require.NotNil(t, d)
		require.Zero(t, d.Kind)
		require.Equal(t, "unusable", d.Kind.String())
		require.Len(t, d.Imports, 1)
		require.Equal(t, "env.foo() -> ()", d.Imports[0].String())
	})
	t.Run("accepted module", func(t *testing.T) {
		wasm := testguest.SDK().Encode()
		info, err := module.Inspect(context.Background(), wasm)
		require.NoError(t, err)
		d := module.Describe(wasm)
		require.Equal(t, info.Imports, d.Imports)
		require.Equal(t, info.Exports, d.Exports)
		var names []string
		for _, f := range d.Exports {
			names = append(names, f.String())
		}
		require.Equal(t, []string{
			"safepool_abi_version() -> (i32)",
			"safepool_alloc(i32) -> (i32)",
			"safepool_call(i32, i32, i32, i32) -> ()",
			"safepool_handlers() -> ()",
		}, names, "sorted by name")
	})
	for name, b := range map[string][]byte{
		"empty":           nil,
		"text":            []byte("plain text"),
		"magic only":      []byte("\x00asm"),
		"section too big": append([]byte("\x00asm\x01\x00\x00\x00"), 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00),
	} {
		t.Run(name, func(t *testing.T) {
			require.Nil(t, module.Describe(b))
		})
	}
}

// TestMemoryPages: Info says how much linear memory a module needs before
// any of its code runs, so that a worker can refuse a cap below it with
// figures.
func TestMemoryPages(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wasm  []byte
		pages uint64
	}{
		{"fixture", testguest.Bytes(t, "wbigmem"), 1280},
		{"command", testguest.Module{Funcs: []testguest.Func{{Export: "_start"}}, Memory: 3}.Encode(), 3},
		{"no memory", testguest.Module{Funcs: []testguest.Func{{Export: "_start"}}}.Encode(), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := module.Inspect(context.Background(), tc.wasm)
			require.NoError(t, err)
			require.Equal(t, tc.pages, info.MemoryPages)
		})
	}
}

// TestInspectWith: the bounds check and then Inspect's checks come before
// the validator, so that a module that cannot run is refused without a
// compilation. The validator's error is returned as it is; it runs for
// every module the checks accept, and first for one whose layout they
// cannot judge.
func TestInspectWith(t *testing.T) {
	never := func() error {
		t.Fatal("a module with a hostile header reached the validator")
		return nil
	}
	hostile := 0
	for _, bad := range testguest.Malformed(t) {
		if errors.Is(bad.Is, module.ErrNotWasm) || bad.Want == "count 2147483647" || bad.Want == "4294967295 locals" {
			hostile++
			t.Run(bad.Name, func(t *testing.T) {
				_, err := module.InspectWith(bad.Wasm, never)
				require.ErrorIs(t, err, bad.Is)
			})
		}
	}
	require.GreaterOrEqual(t, hostile, 8, "the corpus lost its hostile headers")
	t.Run("the validator's error", func(t *testing.T) {
		mine := errors.New("compile: no")
		_, err := module.InspectWith(testguest.SDK().Encode(), func() error { return mine })
		require.Same(t, mine, err)
	})
	t.Run("the checks before it", func(t *testing.T) {
		_, err := module.InspectWith(testguest.Bytes(t, "wbadimport"), never)
		require.ErrorIs(t, err, module.ErrForbiddenImport)
		_, err = module.InspectWith(testguest.Bytes(t, "sdkcmd"), never)
		require.ErrorIs(t, err, module.ErrNotReactor)
		validated := false
		info, err := module.InspectWith(testguest.Bytes(t, "wcmd"), func() error { validated = true; return nil })
		require.NoError(t, err)
		require.Equal(t, module.KindCommand, info.Kind)
		require.True(t, validated, "a module the checks accept is validated")
	})
	t.Run("a layout the checks cannot judge", func(t *testing.T) {
		// An undefined section, and an export of a function that does not
		// exist: the validator says what is wrong, not a check.
		undefined := testguest.Section([]byte("\x00asm\x01\x00\x00\x00"), 0x2a, []byte{1, 2, 3})
		nowhere := testguest.Section(testguest.Module{Funcs: []testguest.Func{{}}}.Encode(), 7,
			append([]byte{1, 6}, "_start\x00\x09"...)) // _start is function 9, of 1
		for _, wasm := range [][]byte{undefined, nowhere} {
			mine := errors.New("compile: no")
			_, err := module.InspectWith(wasm, func() error { return mine })
			require.Same(t, mine, err)
		}
	})
}
