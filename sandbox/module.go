package sandbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/safepool/safepool/internal/wire"
)

// Errors returned by Inspect. Each is wrapped in an error that names the
// module's problem in detail; match them with errors.Is.
var (
	ErrNotWasm         = errors.New("sandbox: not a WebAssembly module")
	ErrInvalidModule   = errors.New("sandbox: invalid WebAssembly module")
	ErrForbiddenImport = errors.New("sandbox: module imports something the sandbox does not provide")
	ErrNotTaskModule   = errors.New("sandbox: module is neither a safepool SDK module nor a WASI command")
	ErrBadSignature    = errors.New("sandbox: export has the wrong signature")
	ErrMissingExport   = errors.New("sandbox: module lacks a required export")
	ErrABIVersion      = errors.New("sandbox: unsupported guest ABI version")
	ErrNotReactor      = errors.New("sandbox: module exports the safepool SDK but was built as a command, not a reactor")

	// Returned by CheckEngine, Precompile and workers asked for an engine.
	ErrUnknownEngine     = errors.New("sandbox: unknown engine")
	ErrEngineUnavailable = errors.New("sandbox: engine unavailable")
)

// ABIVersion is the guest ABI version this sandbox speaks. See guest/ABI.md.
const ABIVersion = 1

// Kind says how a module runs tasks.
type Kind uint8

// Module kinds.
const (
	// KindSDK modules export the safepool guest ABI; one instance serves many
	// tasks.
	KindSDK = Kind(wire.KindSDK)
	// KindCommand modules are plain WASI commands: input on stdin, output on
	// stdout, a fresh instance per task.
	KindCommand = Kind(wire.KindCommand)
)

func (k Kind) String() string {
	switch k {
	case KindSDK:
		return "sdk"
	case KindCommand:
		return "command"
	}
	return "unusable"
}

// Func describes an imported or exported function.
type Func struct {
	Module  string // import module; "" for exports
	Name    string
	Params  []string
	Results []string
}

func (f Func) String() string {
	name := f.Name
	if f.Module != "" {
		name = f.Module + "." + f.Name
	}
	return fmt.Sprintf("%s(%s) -> (%s)", name, strings.Join(f.Params, ", "), strings.Join(f.Results, ", "))
}

// ModuleInfo is what Inspect learned about a module.
type ModuleInfo struct {
	Kind    Kind
	Batch   bool // exports safepool_batch
	Imports []Func
	Exports []Func
}

type sig struct{ params, results []api.ValueType }

var (
	i32 = api.ValueTypeI32

	sdkExports = map[string]sig{
		"safepool_abi_version": {nil, []api.ValueType{i32}},
		"safepool_alloc":       {[]api.ValueType{i32}, []api.ValueType{i32}},
		"safepool_call":        {[]api.ValueType{i32, i32, i32, i32}, nil},
		"safepool_handlers":    {nil, nil},
	}
	optionalExports = map[string]sig{
		"safepool_batch": {[]api.ValueType{i32, i32}, nil},
		"_initialize":    {nil, nil},
		"_start":         {nil, nil},
	}
	hostImports = map[string]sig{
		"result": {[]api.ValueType{i32, i32, i32}, nil},
	}
)

// Inspect checks that wasm is a module safepool can run and says how. It
// compiles nothing to machine code and runs nothing, so it is safe on
// untrusted input and is much cheaper than a compilation to machine code.
//
// # Errors
//
// The error wraps one of ErrNotWasm, ErrInvalidModule, ErrForbiddenImport,
// ErrNotTaskModule, ErrNotReactor, ErrBadSignature or ErrMissingExport, and
// its text names the import or export at fault and says what to do.
func Inspect(ctx context.Context, wasm []byte) (*ModuleInfo, error) {
	if err := checkHeader(wasm); err != nil {
		return nil, err
	}
	// The interpreter's compile only decodes and validates; it makes no
	// machine code, so this stays cheap and needs no cache.
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	defer cm.Close(ctx)
	if err := checkOtherImports(wasm); err != nil {
		return nil, err
	}
	return inspectCompiled(cm, wasm)
}

// checkHeader checks the magic bytes and, before wazero sizes anything from
// the input's counts, every length in the module (see checkBounds).
func checkHeader(wasm []byte) error {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return fmt.Errorf("%w: the file does not start with the wasm magic bytes \\0asm; pass a compiled .wasm file", ErrNotWasm)
	}
	if err := checkBounds(wasm); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	return nil
}

// inspectCompiled checks the imports and exports of cm, compiled from wasm.
func inspectCompiled(cm wazero.CompiledModule, wasm []byte) (*ModuleInfo, error) {
	info := &ModuleInfo{}
	for _, d := range cm.ImportedFunctions() {
		mod, name, _ := d.Import()
		f := funcOf(mod, name, d)
		info.Imports = append(info.Imports, f)
		switch mod {
		case "wasi_snapshot_preview1", "wasi_unstable":
			if mod == "wasi_unstable" {
				return nil, fmt.Errorf("%w: %s; rebuild for wasi_snapshot_preview1 (WASI preview 1)", ErrForbiddenImport, f)
			}
			if err := checkWASI(f, d); err != nil {
				return nil, err
			}
		case "safepool":
			want, ok := hostImports[name]
			if !ok {
				return nil, fmt.Errorf("%w: %s; the safepool module only provides result(i32, i32, i32)", ErrForbiddenImport, f)
			}
			if !sameSig(want, d) {
				return nil, fmt.Errorf("%w: import %s, want safepool.result(i32, i32, i32)", ErrBadSignature, f)
			}
		default:
			return nil, fmt.Errorf("%w: %s; only wasi_snapshot_preview1 and safepool imports are allowed", ErrForbiddenImport, f)
		}
	}
	if mems := cm.ImportedMemories(); len(mems) > 0 {
		mod, name, _ := mems[0].Import()
		return nil, fmt.Errorf("%w: memory %s.%s; the module must define its own memory", ErrForbiddenImport, mod, name)
	}
	exports := cm.ExportedFunctions()
	names := make([]string, 0, len(exports))
	for name := range exports {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		info.Exports = append(info.Exports, funcOf("", name, exports[name]))
	}
	check := func(name string, want sig) error {
		d, ok := exports[name]
		if !ok {
			return nil
		}
		if !sameSig(want, d) {
			return fmt.Errorf("%w: %s, want %s; see guest/ABI.md", ErrBadSignature,
				funcOf("", name, d), Func{Name: name, Params: typeNames(want.params), Results: typeNames(want.results)})
		}
		return nil
	}
	for name, want := range optionalExports {
		if err := check(name, want); err != nil {
			return nil, err
		}
	}
	if _, sdk := exports["safepool_abi_version"]; sdk {
		if _, ok := exports["_start"]; ok {
			return nil, commandBuild(wasm)
		}
		for _, name := range []string{"safepool_abi_version", "safepool_alloc", "safepool_call", "safepool_handlers"} {
			if _, ok := exports[name]; !ok {
				return nil, fmt.Errorf("%w: %s; an SDK module exports safepool_abi_version, safepool_alloc, safepool_call and safepool_handlers (see guest/ABI.md)", ErrMissingExport, name)
			}
			if err := check(name, sdkExports[name]); err != nil {
				return nil, err
			}
		}
		if _, ok := cm.ExportedMemories()["memory"]; !ok {
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

func sameSig(want sig, d api.FunctionDefinition) bool {
	return slices.Equal(want.params, d.ParamTypes()) && slices.Equal(want.results, d.ResultTypes())
}

func funcOf(mod, name string, d api.FunctionDefinition) Func {
	return Func{Module: mod, Name: name, Params: typeNames(d.ParamTypes()), Results: typeNames(d.ResultTypes())}
}

func typeNames(ts []api.ValueType) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = api.ValueTypeName(t)
	}
	return out
}

// commandBuild is the error for a module that exports both _start and the
// SDK's exports. Its exports cannot be called before _start has run, and
// _start runs the program's main and exits: it was built as a command where
// a reactor was needed.
func commandBuild(wasm []byte) error {
	if hasCustomSection(wasm, goBuildID) {
		return &refusal{ErrNotReactor, "sandbox: module is a Go program built without -buildmode=c-shared " +
			"(it exports _start and the safepool SDK's exports); rebuild it with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared"}
	}
	return fmt.Errorf("%w (it exports _start and safepool_abi_version); build it as a reactor, "+
		"which exports no _start (for C with clang: -mexec-model=reactor)", ErrNotReactor)
}

// refusal is a load error whose text is written out in full rather than
// after its sentinel's.
type refusal struct {
	sentinel error
	msg      string
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.sentinel }
