// Package engine is the seam between a safepool worker and the WebAssembly
// engines that run its modules: what an engine must do ([Engine],
// [Compiled], [Guest], and the [Host] side an instance calls back into),
// which engines a binary has ([Register], [Lookup], [Check]), and where
// they keep compiled modules ([Prepare], [Prepared], [Forget],
// [DefaultCacheDir]).
//
// The worker's task logic (batching, blame, caps, timeouts, statuses) lives
// in package sandbox and does not depend on the engine. An engine only
// compiles, instantiates, calls, caps memory, interrupts and names its
// traps, and it reports what happened with this package's error types
// ([TrapError], [ExitError], [MemoryAtStartError], [InstantiateError]), so
// that every engine gives the same statuses and messages.
//
// wazero (package internal/engine/wazero) is registered in every binary
// that runs workers. Other engines register themselves when their package
// is imported, the way database/sql drivers do: wasmtime's is
// github.com/safepool/safepool/engine/wasmtime, a Go module of its own.
//
// # The compilation cache
//
// Each engine has a directory of its own under the cache root, and each
// module a directory of its own under that, named after the module's
// SHA-256: root/<engine>/<hash>. A damaged entry is removed without knowing
// the engine's file names, and an entry marked prepared ([Prepared]) lets a
// pool start workers without checking the module in the host again.
package engine
