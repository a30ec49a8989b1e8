// Package sandbox is the worker side of safepool: the process that runs a
// module's tasks on a WebAssembly engine, under a memory cap and a
// deadline, and reports each task's status to the pool.
//
// A pool starts workers by re-executing its own binary; this package's init
// function recognises such a process and turns it into a worker before main
// runs, so programs that import the pool need no setup. Programs that want an
// explicit worker executable call [Main] (the safepool CLI does, for
// `safepool worker`).
//
// The task logic here does not depend on the engine: batching, blame,
// memory caps, timeouts, statuses, and the three ways of running a task
// (one safepool_call, a safepool_batch of many, or a WASI command's
// _start). Each engine only compiles, instantiates, calls, caps memory,
// interrupts and names its traps, behind package internal/engine's
// interface; wazero is built into every worker.
//
// Each task ends with one status: ok, error, memory_limit or timeout. The
// worker never reports killed; the host does, when the worker dies. After a
// trap, a timeout or a memory-limit hit the worker throws the instance away
// and makes a new one for the next task.
//
// A task's error is one line that says what happened: "memory limit of
// 64 MiB reached", "wasm error: unreachable", the guest's own error, "task
// ran past its timeout of 5ms and was stopped". What explains it, such as
// the guest's stderr, a Go runtime's dump or the wasm stack trace, is in the
// task's log. A worker that cannot start says why on the first line of its
// Fatal message, and gives those details on the lines after it.
//
// A task's timeout covers only the task's call. Making an instance (its
// _initialize, and at the handshake the SDK's calls) runs under the start
// timeout instead, so that a deadline of a microsecond does not stop a Go
// guest's start-up, which takes milliseconds.
//
// The sandbox denies by default: no preopened directories, no environment
// variables, no arguments, no sockets, and no imports beyond WASI preview 1
// and safepool's own "safepool" module. Guest stdout and stderr are kept per
// task, bounded to a tail.
package sandbox
