package engine

import (
	"context"
	"io"

	"github.com/safepool/safepool/module"
)

// Engine is a WebAssembly engine a worker can run modules on. Prepare runs
// in the host, Load in each worker; an Engine keeps no state between calls
// and is safe for concurrent use.
type Engine interface {
	// Prepare checks wasm as module.Inspect does and compiles it into dir,
	// the module's entry in the compilation cache, so that workers load
	// machine code instead of compiling. It is cheap when the entry already
	// holds the module, and a damaged entry is removed and compiled again.
	// With dir "" it only checks.
	Prepare(ctx context.Context, wasm []byte, dir string, opts Options) (*module.Info, error)
	// Load compiles wasm, through the cache entry dir when it is set,
	// checks it as module.Inspect does, and returns it ready to
	// instantiate. Only the worker's main goroutine uses what it returns.
	Load(ctx context.Context, wasm []byte, dir string, opts Options) (Compiled, *module.Info, error)
	// Reservation is the address space, in bytes, a worker of this engine
	// needs beyond what the host counts for its linear memory: the
	// worker's address-space backstop is raised by it.
	Reservation() uint64
}

// Options are the settings a module is compiled with. The host's Prepare
// and every worker must use the same ones: they are part of the cache
// entry's key (see [Dir]).
type Options struct {
	// NoInterrupt compiles the module without the checks that let
	// Guest.Interrupt stop a call that is running guest code. Under wazero
	// those checks make compiled code call back into Go at every loop
	// back-edge, which made a small task ten times slower (a WAT guest's
	// batch of squares: 0.05 against 0.55 µs a task on two goroutines).
	// With NoInterrupt, Interrupt still ends guest sleeps, but a call that
	// computes runs on until it returns. Workers of a pool without a task timeout set it: nothing
	// needs stopping then but a start-up that hangs, and for that the
	// worker ends itself (package sandbox). Engines whose checks are cheap
	// (wasmtime's epochs) may ignore it.
	NoInterrupt bool
	// Resettable prepares the module so that its instances can be reset
	// (see Resetter), for pools that give every task a fresh instance.
	// Under wazero the module is compiled with an export added for each
	// mutable global; engines that cannot reset ignore it.
	Resettable bool
}

// Resetter is a Guest that can return to an earlier state instead of
// being instantiated anew: the Guests of an engine that can reset, loaded
// with Options.Resettable, implement it.
type Resetter interface {
	// Snapshot records the instance's state: its linear memory and
	// mutable globals. Call it once, between calls; an error means the
	// instance cannot be reset, and is otherwise unharmed.
	Snapshot() error
	// Reset makes the instance's state what it was at the Snapshot,
	// between calls, and reports whether it did. It does nothing and
	// reports false when that cannot be done exactly: no snapshot, the
	// memory grew, the guest changed its WASI file table, or the instance
	// was stopped. The caller then makes a new instance.
	Reset() bool
}

// Compiled is one module compiled in an engine.
type Compiled interface {
	// Instantiate makes a new instance of the module for h: linear memory
	// capped at h.Limit, stdio and host functions through h. It runs no
	// export (a start function in the module runs, with no deadline). A
	// module that needs more memory than the cap to start gives
	// *MemoryAtStartError; a start function's trap gives *TrapError; any
	// other failure of an instantiation gives *InstantiateError.
	Instantiate(ctx context.Context, h *Host) (Guest, error)
	Close()
}

// Guest is one instance of the module inside an engine.
type Guest interface {
	// Call runs an export with i32 arguments and returns its i32 result,
	// or 0 for an export without one. A proc_exit gives *ExitError; a trap
	// gives *TrapError.
	//
	// Call must stop promptly once Interrupt has been called, including
	// when Interrupt came before the call started: the watchdog makes
	// Host.Interrupted true before it calls Interrupt, so an engine that
	// checks Interrupted after it has made the call interruptible misses
	// nothing.
	Call(ctx context.Context, fn Export, args ...uint32) (uint32, error)
	// Has reports whether the module exports fn.
	Has(fn Export) bool
	// Memory returns n bytes of linear memory at ptr, shared with the guest
	// (writes go straight to the guest), or false when they are out of
	// bounds.
	Memory(ptr, n uint32) ([]byte, bool)
	// CapHit reports whether a grow past the cap was refused since the last
	// ClearCapHit.
	CapHit() bool
	ClearCapHit()
	// PeakMemory is the largest linear memory size the instance had, bytes.
	PeakMemory() uint64
	// Interrupt stops the running call. It is called from the watchdog's
	// goroutine; everything else is called from the worker's.
	Interrupt()
	Close()
}

// Host is what an instance gets from the worker that makes it: its memory
// cap, its stdio and the worker's side of the host functions. The worker
// fills it before Instantiate and does not change it afterwards; the engine
// keeps it for the instance's life.
type Host struct {
	// Limit caps the instance's linear memory, in bytes.
	Limit uint64
	// Stdin is what the guest reads on fd 0 (command modules); nil is
	// empty.
	Stdin []byte
	// Stdout receives the guest's fd 1 (command modules). Nil sends fd 1
	// to Log.
	Stdout io.Writer
	// Log receives the guest's fd 2, and fd 1 when Stdout is nil. Its
	// writes take every byte and never fail: a guest's runtime would retry
	// a short write forever.
	Log io.Writer
	// Sleep implements WASI sleeps: it sleeps for ns nanoseconds and
	// reports whether the whole sleep passed, which is false once the
	// instance is interrupted, so that a guest asleep past its deadline is
	// stopped on time.
	Sleep func(ns int64) bool
	// Result is the safepool.result host function, with the bytes the guest
	// passed (valid only during the call). It panics when the guest calls
	// it wrongly; the engine turns the panic into a trap.
	Result func(status uint32, b []byte)
	// Interrupted reports whether the watchdog has stopped the instance
	// (see Guest.Call).
	Interrupted func() bool

	// Grants: what the pool lets the guest see. Nothing by default.
	Grants Grants

	// HostCall is the safepool.host_call host function: it calls the host
	// function name with in (both valid only during the call) and returns
	// the length of its output, or for a failure -1 minus the length of
	// the error message; the bytes wait for HostTake. It never panics on
	// a failure of the host function.
	HostCall func(name, in []byte) int32
	// HostTake returns the bytes the last HostCall left, and forgets them.
	HostTake func() []byte
}

// Grants are what a guest may see of its host: environment variables,
// arguments and directories. The zero value grants nothing.
type Grants struct {
	// Env holds "KEY=VALUE" entries, the guest's whole environment.
	Env []string
	// Args are the guest's arguments after the program name. When there
	// are any, the guest's argv is Program followed by them; with none it
	// is empty.
	Args    []string
	Program string
	// Dirs are the directories the guest may open, each under its own
	// guest path. Nothing outside them is reachable: not by "..", not by a
	// symlink, not by an absolute path.
	Dirs []GrantedDir
}

// GrantedDir is a host directory granted to a guest.
type GrantedDir struct {
	HostPath  string // absolute
	GuestPath string // absolute, slash-separated
	Writable  bool   // otherwise every write fails
}

// Argv is the guest's whole argument vector: nil when no arguments are
// granted.
func (g *Grants) Argv() []string {
	if len(g.Args) == 0 {
		return nil
	}
	return append([]string{g.Program}, g.Args...)
}

// Export names the functions the worker calls.
type Export uint8

// The exports the worker calls.
const (
	ExportAlloc Export = iota
	ExportCall
	ExportBatch
	ExportABIVersion
	ExportHandlers
	ExportInitialize
	ExportStart
	NumExports
)

var exportNames = [NumExports]string{
	ExportAlloc:      "safepool_alloc",
	ExportCall:       "safepool_call",
	ExportBatch:      "safepool_batch",
	ExportABIVersion: "safepool_abi_version",
	ExportHandlers:   "safepool_handlers",
	ExportInitialize: "_initialize",
	ExportStart:      "_start",
}

// String is the export's name in the module.
func (f Export) String() string { return exportNames[f] }
