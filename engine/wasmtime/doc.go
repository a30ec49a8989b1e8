// Package wasmtime is safepool's second engine, wasmtime-go, in a Go module
// of its own so that programs which do not use it never download it.
// Importing the package registers it under the name "wasmtime", the way
// database/sql drivers register:
//
//	import (
//		"github.com/safepool/safepool/pool"
//		_ "github.com/safepool/safepool/engine/wasmtime"
//	)
//
//	p, err := pool.New(ctx, pool.Config{Module: "tasks.wasm", Engine: "wasmtime"})
//
// It needs cgo and a C compiler; the module download is about 207 MB. Built
// without cgo the package registers nothing, and a pool asked for wasmtime
// says so.
//
// Workers are the program itself, re-executed, so the import covers them
// too. A program that runs its workers as a separate command
// (pool.Config.WorkerCommand) needs the import in that command.
//
// The safepool command with this engine built in is this module's
// cmd/safepool:
//
//	go install github.com/safepool/safepool/engine/wasmtime/cmd/safepool@latest
//
// The engine gives the statuses, messages and limits of the default engine
// (the conformance suite runs on both); see the repository's README for the
// differences that remain. Directory grants (pool.Config.Dirs) are wasmtime
// preopens, read-only ones with read permissions only: wasmtime confines
// every path beneath its directory (cap-std refuses "..", absolute paths
// and symlinks that lead out), and the engine refuses path_symlink, as the
// default engine does. Such an instance keeps WASI's fd_read and fd_write,
// and its stdio goes through pipes that are emptied into the task's log and
// output by the time each call returns (a write costs tens of µs there,
// against a few with the engine's own stdio, used without grants; see
// BenchmarkCall). One of them: its instances cannot be reset
// (engine.Resetter), so with pool.Config.FreshInstance every task gets a
// new instance, where the default engine resets one copy-on-write.
package wasmtime
