package module

import (
	"context"
	"fmt"
	"slices"

	"github.com/tetratelabs/wazero"
)

const i32 = 0x7f // the binary encoding of the i32 value type

var (
	sdkExports = map[string]funcType{
		"safepool_abi_version": {nil, []byte{i32}},
		"safepool_alloc":       {[]byte{i32}, []byte{i32}},
		"safepool_call":        {[]byte{i32, i32, i32, i32}, nil},
		"safepool_handlers":    {nil, nil},
	}
	optionalExports = map[string]funcType{
		"safepool_batch": {[]byte{i32, i32}, nil},
		"_initialize":    {nil, nil},
		"_start":         {nil, nil},
	}
	hostImports = map[string]funcType{
		"result":    {[]byte{i32, i32, i32}, nil},
		"host_call": {[]byte{i32, i32, i32, i32}, []byte{i32}},
		"host_take": {[]byte{i32}, nil},
	}
)

// Inspect checks that wasm is a module safepool can run and says how. It
// validates the module with wazero's decoder but compiles nothing to machine
// code and runs nothing, so it is safe on untrusted input and much cheaper
// than a compilation to machine code.
//
// # Errors
//
// The error wraps one of ErrNotWasm, ErrInvalidModule, ErrForbiddenImport,
// ErrNotTaskModule, ErrNotReactor, ErrBadSignature or ErrMissingExport, and
// its text names the import or export at fault and says what to do.
func Inspect(ctx context.Context, wasm []byte) (*Info, error) {
	return InspectWith(wasm, func() error {
		// The interpreter's compile only decodes and validates; it makes no
		// machine code, so this stays cheap and needs no cache.
		r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
		defer r.Close(ctx)
		cm, err := r.CompileModule(ctx, wasm)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidModule, err)
		}
		return cm.Close(ctx)
	})
}

// InspectWith is Inspect with the validation left to validate: typically an
// engine's compilation of wasm to machine code, which validates the module
// anyway, so that the module is not decoded a second time.
//
// InspectWith refuses a file that is not WebAssembly, and a module whose
// lengths and counts claim more than its bytes hold, before anything else:
// decoders size their allocations from those counts. Then it makes
// Inspect's checks of the module's imports and exports, read from wasm
// itself, so that a module that could never run is refused in
// milliseconds, not after a compilation that can take seconds. Only then
// does it call validate, which runs for every module the checks accept.
// A module whose layout the checks cannot judge (a section they cannot
// read, an export that points nowhere) goes to validate first, so that
// its refusal is the validator's, which says what is wrong.
//
// # Errors
//
// validate must refuse every module that is not valid WebAssembly, with an
// error that wraps ErrInvalidModule; its error is returned as it is.
// Otherwise the errors are Inspect's.
func InspectWith(wasm []byte, validate func() error) (*Info, error) {
	if err := checkHeader(wasm); err != nil {
		return nil, err
	}
	l, unsound := readLayout(wasm)
	if unsound == nil {
		unsound = l.sound()
	}
	var info *Info
	if unsound == nil {
		var err error
		if info, err = l.check(); err != nil {
			return nil, err
		}
	}
	if err := validate(); err != nil {
		return nil, err
	}
	if unsound != nil {
		// Validation passed, so this is a disagreement between the
		// validator and the reader; refuse rather than guess.
		return nil, fmt.Errorf("%w: %v", ErrInvalidModule, unsound)
	}
	return info, nil
}

// checkHeader checks the magic bytes and, before any decoder sizes anything
// from the input's counts, every length in the module (see checkBounds).
func checkHeader(wasm []byte) error {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return fmt.Errorf("%w: the file does not start with the wasm magic bytes \\0asm; pass a compiled .wasm file", ErrNotWasm)
	}
	if err := checkBounds(wasm); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	return nil
}

// check makes Inspect's checks of a validated module's imports and exports.
func (l *layout) check() (*Info, error) {
	if err := l.checkOtherImports(); err != nil {
		return nil, err
	}
	if err := l.checkFuncImports(); err != nil {
		return nil, err
	}
	for _, im := range l.imports {
		if im.kind == kindMemory {
			return nil, fmt.Errorf("%w: memory %s.%s; the module must define its own memory", ErrForbiddenImport, im.module, im.name)
		}
	}
	info := l.describe()
	exports := l.funcExports()
	check := func(name string, want funcType) error {
		t, ok := exports[name]
		if !ok || slices.Equal(want.params, t.params) && slices.Equal(want.results, t.results) {
			return nil
		}
		return fmt.Errorf("%w: %s, want %s; see guest/ABI.md", ErrBadSignature, funcOf("", name, t), funcOf("", name, want))
	}
	for name, want := range optionalExports {
		if err := check(name, want); err != nil {
			return nil, err
		}
	}
	if _, sdk := exports["safepool_abi_version"]; sdk {
		if _, ok := exports["_start"]; ok {
			return nil, l.commandBuild()
		}
		for _, name := range []string{"safepool_abi_version", "safepool_alloc", "safepool_call", "safepool_handlers"} {
			if _, ok := exports[name]; !ok {
				return nil, fmt.Errorf("%w: %s; an SDK module exports safepool_abi_version, safepool_alloc, safepool_call and safepool_handlers (see guest/ABI.md)", ErrMissingExport, name)
			}
			if err := check(name, sdkExports[name]); err != nil {
				return nil, err
			}
		}
		if !l.exportsMemory("memory") {
			return nil, fmt.Errorf("%w: memory; an SDK module must export its linear memory as \"memory\"", ErrMissingExport)
		}
		info.Kind = KindSDK
		_, info.Batch = exports["safepool_batch"]
		return info, nil
	}
	if _, ok := exports["_start"]; ok {
		info.Kind = KindCommand
		return info, nil
	}
	return nil, fmt.Errorf("%w: it exports neither safepool_abi_version nor _start; build it with the guest SDK (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared) or as a WASI command", ErrNotTaskModule)
}

// checkOtherImports refuses imports of tables, globals and anything else
// that is not a function or a memory: no module the sandbox provides
// exports one, so such a module could never be instantiated.
func (l *layout) checkOtherImports() error {
	for _, im := range l.imports {
		switch im.kind {
		case kindFunc, kindMemory: // checked with better messages below
		case kindTable:
			return fmt.Errorf("%w: table %s.%s; the sandbox provides no tables: define the table in the module", ErrForbiddenImport, im.module, im.name)
		case kindGlobal:
			return fmt.Errorf("%w: global %s.%s; the sandbox provides no globals", ErrForbiddenImport, im.module, im.name)
		default:
			return fmt.Errorf("%w: import %s.%s of kind %#x; only functions from wasi_snapshot_preview1 and safepool are provided", ErrForbiddenImport, im.module, im.name, im.kind)
		}
	}
	return nil
}

// checkFuncImports checks each imported function against what the worker
// provides: WASI preview 1 and safepool.result.
func (l *layout) checkFuncImports() error {
	for _, im := range l.imports {
		if im.kind != kindFunc {
			continue
		}
		t, ok := l.typeAt(im.typ)
		if !ok {
			return fmt.Errorf("%w: import %s.%s has type index %d, past the type section", ErrInvalidModule, im.module, im.name, im.typ)
		}
		f := funcOf(im.module, im.name, t)
		switch im.module {
		case "wasi_snapshot_preview1":
			if err := checkWASI(f, t); err != nil {
				return err
			}
		case "wasi_unstable":
			return fmt.Errorf("%w: %s; rebuild for wasi_snapshot_preview1 (WASI preview 1)", ErrForbiddenImport, f)
		case "safepool":
			want, ok := hostImports[im.name]
			if !ok {
				return fmt.Errorf("%w: %s; the safepool module only provides result(i32, i32, i32), host_call(i32, i32, i32, i32) -> i32 and host_take(i32)", ErrForbiddenImport, f)
			}
			if !slices.Equal(want.params, t.params) || !slices.Equal(want.results, t.results) {
				return fmt.Errorf("%w: import %s, want %s", ErrBadSignature, f, funcOf("safepool", im.name, want))
			}
		default:
			return fmt.Errorf("%w: %s; only wasi_snapshot_preview1 and safepool imports are allowed", ErrForbiddenImport, f)
		}
	}
	return nil
}

// commandBuild is the error for a module that exports both _start and the
// SDK's exports. Its exports cannot be called before _start has run, and
// _start runs the program's main and exits: it was built as a command where
// a reactor was needed.
func (l *layout) commandBuild() error {
	if l.hasCustom(goBuildID) {
		return &refusal{ErrNotReactor, "module: a Go program built without -buildmode=c-shared " +
			"(it exports _start and the safepool SDK's exports); rebuild it with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared"}
	}
	return fmt.Errorf("%w (it exports _start and safepool_abi_version); build it as a reactor, "+
		"which exports no _start (for C with clang: -mexec-model=reactor)", ErrNotReactor)
}
