// Command safepool runs a WebAssembly task function over JSON Lines input in
// a pool of isolated worker processes, and finishes even when a worker is
// SIGKILLed.
//
//	safepool run --module tasks.wasm --func square --in numbers.jsonl
//	safepool inspect tasks.wasm
//	safepool version
//
// This build runs tasks on wazero. The same command with wasmtime built in
// is github.com/safepool/safepool/engine/wasmtime/cmd/safepool, in the
// wasmtime module (it needs cgo). The command itself lives in internal/cli;
// see README.md in this folder for the full contract: flags, the output
// records and the exit codes.
package main

import (
	"os"

	"github.com/safepool/safepool/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
