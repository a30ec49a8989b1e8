// Package module inspects WebAssembly task modules: what kind they are, what
// they import and export, and why one cannot run.
//
// A pool calls [Inspect] (through its engine, see [InspectWith]) before any
// worker starts, so that a bad module fails at load time with an error that
// names the import or export at fault and says what to do:
//
//	info, err := module.Inspect(ctx, wasm)
//	if err != nil {
//		return err // errors.Is(err, module.ErrForbiddenImport), ...
//	}
//	fmt.Println(info.Kind, info.Exports)
//
// A task module is either a safepool SDK module ([KindSDK]: it exports the
// guest ABI of guest/ABI.md, and one instance serves many tasks) or a WASI
// command ([KindCommand]: input on stdin, output on stdout, a fresh instance
// per task). It may import WASI preview 1 and safepool's own
// "safepool.result", nothing else.
//
// Inspect is safe on untrusted input. It runs nothing and compiles nothing
// to machine code; before any decoder allocates from the module's counts,
// one bounds-checked reader of the binary format checks every length and
// count against the bytes that are really there, so a 40-byte file that
// claims two billion imports is refused instead of exhausting the host's
// memory.
package module
