// Package guest is the SDK for safepool task modules written in Go.
//
// A task module is a WebAssembly module that the safepool workers load and
// call once per task. With this package, writing one takes an init function
// that registers handlers by name and an empty main:
//
//	//go:build wasip1
//
//	package main
//
//	import (
//		"errors"
//
//		"github.com/safepool/safepool/guest"
//	)
//
//	func init() {
//		guest.HandleJSON("square", func(n int) (int, error) {
//			return n * n, nil
//		})
//		guest.Handle("shout", func(in []byte) ([]byte, error) {
//			if len(in) == 0 {
//				return nil, errors.New("nothing to shout")
//			}
//			return append(in, '!'), nil
//		})
//	}
//
//	// main is required by the Go toolchain but never runs: a reactor module
//	// runs the package init functions when it is loaded, then serves calls.
//	func main() {}
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o square.wasm .
//
// The result exports the functions described in ABI.md (in this package's
// folder), which is the whole contract between a module and a worker.
//
// # Behaviour
//
//   - A handler's returned error, or a recovered panic, becomes a task with
//     status error; the panic's message is "panic: " and the panic value.
//     A panic's stack goes to stderr, whose tail the host keeps as the
//     task's log. The error's first line is the task's error; any lines
//     after it go to the log too. The module stays usable for the next task.
//   - A task naming a function that was never registered gets an error that
//     lists the functions the module has.
//   - Tasks run one at a time on one goroutine. Between tasks the SDK
//     yields to the scheduler whenever its tasks have run for 100 µs since
//     it last did, so that Go's garbage collector keeps up with handlers
//     that make much garbage; a task that makes a megabyte of it yields
//     after every task.
//   - The SDK's own cost is well under a microsecond per task under wazero.
//     [HandleJSON] adds encoding/json's cost, except for basic integer
//     types, which it decodes and encodes directly without allocating.
//   - The buffer the host writes inputs into only grows; the largest input
//     seen stays allocated for the module's lifetime.
//   - Exiting (os.Exit), running out of memory, overflowing the stack and
//     running past the deadline end the task and the module instance; the
//     host starts a fresh instance for the next task.
//
// The package compiles on every platform so that its documentation and
// tests work on the host, but the exports exist only in wasip1 builds.
package guest
