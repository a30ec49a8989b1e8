package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/safepool/safepool/internal/wire"
	"github.com/safepool/safepool/module"
)

// Engine names, as pool.Config.Engine and the CLI's --engine flag spell them.
const (
	// EngineWazero is the default engine: pure Go, no cgo.
	EngineWazero = "wazero"
	// EngineWasmtime is wasmtime-go. It is built in only with -tags wasmtime,
	// which needs cgo.
	EngineWasmtime = "wasmtime"
)

// Errors of CheckEngine, Prepare and workers asked for an engine.
var (
	ErrUnknownEngine     = errors.New("sandbox: unknown engine")
	ErrEngineUnavailable = errors.New("sandbox: engine unavailable")
)

// Engines returns the names of the engines built into this binary, the
// default first: [EngineWazero], then [EngineWasmtime] when the binary was
// built with -tags wasmtime.
func Engines() []string {
	if wasmtimeBuilt {
		return []string{EngineWazero, EngineWasmtime}
	}
	return []string{EngineWazero}
}

// CheckEngine reports whether this binary can run the engine called name.
// The empty name means [EngineWazero].
//
// # Errors
//
// An unknown name wraps ErrUnknownEngine and lists the choices. "wasmtime"
// in a binary built without -tags wasmtime wraps ErrEngineUnavailable and
// says how to build it in.
func CheckEngine(name string) error {
	switch name {
	case "", EngineWazero:
		return nil
	case EngineWasmtime:
		if !wasmtimeBuilt {
			return fmt.Errorf("%w: this binary was built without wasmtime; rebuild with -tags wasmtime (needs cgo)", ErrEngineUnavailable)
		}
		return nil
	}
	return fmt.Errorf("%w %q; use %s or %s", ErrUnknownEngine, name, EngineWazero, EngineWasmtime)
}

// engine is one WebAssembly runtime with one module compiled in it. It is
// the seam between the engine-independent task logic (worker.go and
// instance.go: batching, blame, caps, timeouts, statuses) and wazero or
// wasmtime. Only the worker's main goroutine uses it.
type engine interface {
	// instantiate makes a new instance of the module for inst: linear
	// memory capped at inst.limit, stdin from inst.stdin, stdout to
	// inst.stdout (or inst.log when nil), stderr to inst.log, WASI sleeps
	// through inst.sleep and safepool.result to inst.onResult. It runs no
	// export (a start function in the module runs, with no deadline). A
	// module that needs more memory than the cap to start gives
	// errMemoryAtStart; a start function's trap gives *trapError.
	instantiate(ctx context.Context, inst *instance) (guest, error)
	close()
}

// guest is one instance of the module inside an engine.
type guest interface {
	// call runs an export with i32 arguments and returns its i32 result,
	// or 0 for an export without one. A proc_exit gives *exitError; a trap
	// gives *trapError.
	//
	// call must stop promptly once interrupt has been called, including
	// when interrupt came before the call started: the watchdog sets
	// inst.timedOut before it calls interrupt, so an engine that checks
	// timedOut after it has made the call interruptible misses nothing.
	call(ctx context.Context, fn export, args ...uint32) (uint32, error)
	// has reports whether the module exports fn.
	has(fn export) bool
	// memory returns n bytes of linear memory at ptr, shared with the guest
	// (writes go straight to the guest), or false when they are out of
	// bounds.
	memory(ptr, n uint32) ([]byte, bool)
	// capHit reports whether a grow past the cap was refused since the last
	// clearCapHit.
	capHit() bool
	clearCapHit()
	// peakMemory is the largest linear memory size the instance had, bytes.
	peakMemory() uint64
	// interrupt stops the running call. It is called from the watchdog's
	// goroutine; everything else is called from the worker's.
	interrupt()
	close()
}

// export names the functions the worker calls.
type export uint8

const (
	exportAlloc export = iota
	exportCall
	exportBatch
	exportABIVersion
	exportHandlers
	exportInitialize
	exportStart
	numExports
)

var exportNames = [numExports]string{
	exportAlloc:      "safepool_alloc",
	exportCall:       "safepool_call",
	exportBatch:      "safepool_batch",
	exportABIVersion: "safepool_abi_version",
	exportHandlers:   "safepool_handlers",
	exportInitialize: "_initialize",
	exportStart:      "_start",
}

func (f export) String() string { return exportNames[f] }

// exitError is a guest's proc_exit, in every engine.
type exitError struct{ code uint32 }

func (e *exitError) Error() string    { return fmt.Sprintf("guest exited with code %d", e.code) }
func (e *exitError) ExitCode() uint32 { return e.code }

// trapError is a trap, in every engine. msg is one line, worded the same
// way by every engine: "wasm error: " and the trap's name ("unreachable",
// "integer divide by zero", "stack overflow", ...), or, for a panic in a
// host function, what the guest did wrong. trace is the innermost frames of
// the wasm stack, starting with "wasm stack trace:", or empty; it belongs
// in the task's log, not in its error.
type trapError struct{ msg, trace string }

func (e *trapError) Error() string { return e.msg }

// maxTraceFrames is how many frames of a wasm stack trace a log keeps.
const maxTraceFrames = 16

// newEngine compiles wasm in the engine called name, through the cache
// under cacheDir when it is set.
func newEngine(ctx context.Context, name string, wasm []byte, cacheDir string) (engine, *module.Info, error) {
	if err := CheckEngine(name); err != nil {
		return nil, nil, err
	}
	if name == EngineWasmtime {
		return newWasmtime(wasm, cacheDir)
	}
	return newWazero(ctx, wasm, cacheDir)
}

// Precompile compiles wasm for the engine called name ("" means wazero)
// into the compilation cache under cacheDir, so that workers started
// afterwards load machine code instead of compiling. It is cheap when the
// cache already holds the module. A damaged cache entry is removed and
// compiled again.
//
// # Errors
//
// The errors of [CheckEngine], or a module the engine cannot compile
// (wrapping module.ErrInvalidModule).
func Precompile(ctx context.Context, name string, wasm []byte, cacheDir string) error {
	_, err := Prepare(ctx, name, wasm, cacheDir)
	return err
}

// Prepare checks wasm as [module.Inspect] does, compiles it for the engine
// called name into the cache under cacheDir as [Precompile] does, and
// returns what module.Inspect returns. Once it has succeeded, [Prepared]
// reports true for the same module, engine and cache, until
// [ForgetCompiled].
//
// # Errors
//
// The errors of [CheckEngine] and of [module.Inspect].
func Prepare(ctx context.Context, name string, wasm []byte, cacheDir string) (*module.Info, error) {
	if err := CheckEngine(name); err != nil {
		return nil, err
	}
	var info *module.Info
	var err error
	if name == EngineWasmtime {
		info, err = prepareWasmtime(wasm, cacheDir)
	} else {
		info, err = prepareWazero(ctx, wasm, cacheDir)
	}
	if err == nil && cacheDir != "" {
		// Best effort: without the mark the next pool prepares again.
		mark := preparedMark(name, wasm, cacheDir)
		if os.MkdirAll(filepath.Dir(mark), 0o700) == nil {
			_ = os.WriteFile(mark, nil, 0o600)
		}
	}
	return info, err
}

// Prepared reports whether a Prepare of wasm for the engine called name
// into cacheDir has succeeded (and the entry has not been forgotten since):
// the module passed every check, and its machine code is in the cache. A
// pool then starts its workers at once, without decoding the module in the
// host at all.
func Prepared(name string, wasm []byte, cacheDir string) bool {
	if cacheDir == "" || CheckEngine(name) != nil {
		return false
	}
	_, err := os.Stat(preparedMark(name, wasm, cacheDir))
	return err == nil
}

// preparedRules names the checks a module passed when it was marked
// prepared; a build whose checks differ uses another name, so that it checks
// every module again.
var preparedRules = fmt.Sprintf("abi%d-wire%d-checks%d", module.ABIVersion, wire.Version, checksVersion)

// checksVersion changes whenever module.Inspect's checks do.
const checksVersion = 3

// preparedMark is the file whose presence says that the module was
// prepared. It lives in the module's cache directory, so ForgetCompiled
// removes it with the entry.
func preparedMark(name string, wasm []byte, cacheDir string) string {
	if name == "" {
		name = EngineWazero
	}
	return filepath.Join(cacheDirFor(cacheDir, wasm), "prepared-"+name+"-"+preparedRules)
}

// cacheDirFor returns the cache directory of one module. Each module gets its
// own directory, so that a damaged entry can be removed without knowing the
// engine's internal file names. Both engines share it: wazero keeps its
// files in a subdirectory named after its version, wasmtime its in files
// named after its version and its settings.
func cacheDirFor(root string, wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return filepath.Join(root, hex.EncodeToString(sum[:12]))
}

// DefaultCacheDir returns the compilation cache directory used when a pool is
// not given one: the user's cache directory, or the temporary directory.
// Both engines use it.
func DefaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "safepool", "wazero")
	}
	return filepath.Join(os.TempDir(), "safepool-cache", "wazero")
}

// addressSpaceLimit is the worker's address-space backstop: the host's
// figure, plus what the engine reserves beyond the linear memory the host
// counted (wasmtime reserves 4 GiB and guard pages for every memory,
// whatever its cap).
func addressSpaceLimit(cfg *wire.Init) uint64 {
	if cfg.ProcessLimit == 0 {
		return 0
	}
	if cfg.Engine == EngineWasmtime {
		return cfg.ProcessLimit + wasmtimeReservation
	}
	return cfg.ProcessLimit
}
