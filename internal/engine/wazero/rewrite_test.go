package wazero

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"

	"github.com/safepool/safepool/internal/testguest"
)

// compiles reports whether wazero compiles bin.
func compiles(t testing.TB, bin []byte) error {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	_, err := rt.CompileModule(ctx, bin)
	return err
}

// TestExportGlobalsFixtures runs the rewrite on the project's guests: the
// ones that keep all their state in memory and globals get one export per
// mutable global and still compile; the one that grows a table is
// refused, saying why.
func TestExportGlobalsFixtures(t *testing.T) {
	cases := []struct {
		fixture string
		globals int    // -1: any number above zero
		refused string // the error, for a module that cannot be reset
	}{
		{fixture: "tasks", globals: -1},
		{fixture: "csquare", globals: 1}, // C's stack pointer
		{fixture: "wsquare", globals: 1},
		{fixture: "wgrow", globals: 1},
		{fixture: "wtable", refused: "changes a table"},
	}
	for _, tc := range cases {
		t.Run(tc.fixture, func(t *testing.T) {
			wasm := testguest.Bytes(t, tc.fixture)
			bin, names, err := exportGlobals(wasm)
			if tc.refused != "" {
				require.ErrorContains(t, err, tc.refused)
				return
			}
			require.NoError(t, err)
			if tc.globals < 0 {
				require.NotEmpty(t, names)
			} else {
				require.Len(t, names, tc.globals)
			}
			if tc.fixture == "tasks" {
				return // a Go guest takes long to compile; the reset tests compile one
			}
			require.NoError(t, compiles(t, bin))
			exports := exportNames(t, bin)
			for _, n := range names {
				require.Contains(t, exports, n)
			}
			require.Len(t, exports, len(exportNames(t, wasm))+len(names), "the old exports stay")
		})
	}
}

// exportNames returns the names the module's export section holds.
func exportNames(t *testing.T, wasm []byte) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	r := &reader{b: wasm, off: 8}
	for r.off < len(wasm) {
		id, size := r.byte(), r.u32()
		if id == 7 {
			_, err := readExports(&reader{b: wasm[:r.off+int(size)], off: r.off}, names)
			require.NoError(t, err)
		}
		r.off += int(size)
	}
	require.NoError(t, r.err)
	return names
}

// Hand-made modules, section by section.
var (
	header = []byte("\x00asm\x01\x00\x00\x00")
	// An imported immutable i32 global, env.g: it comes first in the index
	// space, so the module's own globals start at 1.
	importGlobal = section(2, []byte{1, 3, 'e', 'n', 'v', 1, 'g', 3, 0x7F, 0})
	// Globals: a constant i32, then a mutable i64 and a mutable i32.
	globals = section(6, []byte{3,
		0x7F, 0, 0x41, 5, 0x0B,
		0x7E, 1, 0x42, 0x80, 0x01, 0x0B,
		0x7F, 1, 0x41, 0x7F, 0x0B})
	// A memory of one page.
	memory = section(5, []byte{1, 0, 1})
	// A function that does table.grow, with its type.
	tableGrow = [][]byte{
		section(1, []byte{1, 0x60, 0, 0}),
		section(3, []byte{1, 0}),
		section(4, []byte{1, 0x70, 0, 1}),
		section(10, []byte{1, 10, 0, 0xD0, 0x70, 0x41, 1, 0xFC, 15, 0, 0x1A, 0x0B}),
	}
)

func section(id byte, body []byte) []byte {
	return append(appendU32([]byte{id}, uint32(len(body))), body...)
}

func mkModule(sections ...[]byte) []byte {
	m := append([]byte(nil), header...)
	for _, s := range sections {
		m = append(m, s...)
	}
	return m
}

func TestExportGlobals(t *testing.T) {
	t.Run("no export section", func(t *testing.T) {
		m := mkModule(memory, globals)
		bin, names, err := exportGlobals(m)
		require.NoError(t, err)
		require.Equal(t, []string{"safepool.g1", "safepool.g2"}, names)
		require.NoError(t, compiles(t, bin))
		require.Equal(t, map[string]bool{"safepool.g1": true, "safepool.g2": true}, exportNames(t, bin))
	})
	t.Run("imported globals come first", func(t *testing.T) {
		m := mkModule(importGlobal, globals, section(7, []byte{1, 1, 'm', 2, 0}))
		m = mkModule(importGlobal, memory, globals, section(7, []byte{1, 1, 'm', 2, 0}))
		bin, names, err := exportGlobals(m)
		require.NoError(t, err)
		require.Equal(t, []string{"safepool.g2", "safepool.g3"}, names)
		require.NoError(t, compiles(t, bin))
		require.Equal(t, map[string]bool{"m": true, "safepool.g2": true, "safepool.g3": true}, exportNames(t, bin))
	})
	t.Run("no mutable global", func(t *testing.T) {
		m := mkModule(memory)
		bin, names, err := exportGlobals(m)
		require.NoError(t, err)
		require.Empty(t, names)
		require.Equal(t, m, bin)
	})
	t.Run("a name taken", func(t *testing.T) {
		taken := section(7, append(appendName([]byte{1}, "safepool.g1"), 3, 1))
		_, _, err := exportGlobals(mkModule(memory, globals, taken))
		require.ErrorContains(t, err, "already exports safepool.g1")
	})
	t.Run("table.grow", func(t *testing.T) {
		_, _, err := exportGlobals(mkModule(tableGrow...))
		require.ErrorContains(t, err, "changes a table")
	})
	t.Run("not a module", func(t *testing.T) {
		_, _, err := exportGlobals([]byte("hello, world"))
		require.ErrorContains(t, err, "not a WebAssembly module")
	})
	t.Run("cut short", func(t *testing.T) {
		m := testguest.Bytes(t, "csquare")
		refused := 0
		for n := 9; n < len(m); n += 1 + n/16 {
			bin, _, err := exportGlobals(m[:n])
			if err != nil {
				refused++
				continue
			}
			// Cut at a section's end: the rest is a module, and its
			// rewrite is as good as it is.
			require.Equal(t, compiles(t, m[:n]) == nil, compiles(t, bin) == nil, "the first %d bytes", n)
		}
		require.NotZero(t, refused)
	})
}

// FuzzExportGlobals: the rewrite never panics, and what it makes of a
// module wazero accepts, wazero accepts too.
func FuzzExportGlobals(f *testing.F) {
	f.Add(mkModule(memory, globals))
	f.Add(mkModule(importGlobal, memory, globals, section(7, []byte{1, 1, 'm', 2, 0})))
	f.Add(mkModule(tableGrow...))
	f.Add(testguest.Bytes(f, "wsquare"))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		bin, _, err := exportGlobals(wasm)
		if err != nil || compiles(t, wasm) != nil {
			return
		}
		require.NoError(t, compiles(t, bin))
	})
}
