// Command safepool is the safepool command line with the wasmtime engine
// built in, next to wazero: the same commands, flags, records and exit codes
// as github.com/safepool/safepool/cmd/safepool, and --engine wasmtime.
//
//	go install github.com/safepool/safepool/engine/wasmtime/cmd/safepool@latest
//	safepool run --module tasks.wasm --func square --engine wasmtime < numbers.jsonl
//	safepool version   # lists the engines: wazero and wasmtime
//
// It needs cgo and a C compiler, like the engine. Built without cgo it has
// wazero only, and --engine wasmtime says so. Its workers are this binary,
// re-executed as 'safepool worker', so they have wasmtime too.
//
// The command lives in the main module's internal/cli, and its contract is
// cmd/safepool/README.md there; this package only adds the engine's import.
package main

import (
	"os"

	_ "github.com/safepool/safepool/engine/wasmtime" // registers "wasmtime"
	"github.com/safepool/safepool/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
