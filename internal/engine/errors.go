package engine

import "fmt"

// ExitError is a guest's proc_exit, in every engine.
type ExitError struct{ Code uint32 }

func (e *ExitError) Error() string { return fmt.Sprintf("guest exited with code %d", e.Code) }

// TrapError is a trap, in every engine. Msg is one line, worded the same
// way by every engine: "wasm error: " and the trap's name ("unreachable",
// "integer divide by zero", "stack overflow", ...), or, for a panic in a
// host function, what the guest did wrong. Trace is the innermost frames
// of the wasm stack (at most MaxTraceFrames), starting with "wasm stack
// trace:", or empty; it belongs in the task's log, not in its error.
type TrapError struct{ Msg, Trace string }

func (e *TrapError) Error() string { return e.Msg }

// MaxTraceFrames is how many frames of a wasm stack trace a TrapError
// keeps.
const MaxTraceFrames = 16

// MemoryAtStartError is an instantiation the memory cap refused: the
// module needs more linear memory than Limit before any of its code runs.
type MemoryAtStartError struct{ Limit uint64 }

func (e *MemoryAtStartError) Error() string {
	return fmt.Sprintf("engine: the module needs more than the memory cap of %d bytes to start", e.Limit)
}

// InstantiateError is an engine's failure to instantiate a module it has
// compiled or loaded from the cache, for any reason but the memory cap. A
// worker reports it as wire.FatalInstantiate, which tells the host that a
// damaged cache entry may be the cause.
type InstantiateError struct{ Err error }

func (e *InstantiateError) Error() string { return "engine: instantiate module: " + e.Err.Error() }
func (e *InstantiateError) Unwrap() error { return e.Err }
