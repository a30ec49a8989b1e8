package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

const usage = `safepool runs a WebAssembly task function over JSON Lines, in a pool of
isolated worker processes that finishes even when a worker is SIGKILLed.

Usage:
  safepool run --module PATH [--func NAME] [flags]   one task per input line
  safepool inspect PATH                               what a module exports and how it runs
  safepool version                                    the version of this binary
  safepool help [run|inspect]                         this help, or a command's
  safepool worker                                     serve as a pool worker (started by safepool itself)

Exit codes: 0 the run completed (skipped tasks included), 1 it aborted or
failed, 2 bad usage, bad input or a bad module.

Run 'safepool help run' for the flags of run.
`

const runHelp = `Usage:
  safepool run --module PATH [--func NAME] [--workers N] [--spares N] [--memory SIZE]
               [--timeout DUR] [--on-kill skip|abort|retry] [--retries N] [--in PATH] [--out PATH]
               [--killed PATH] [--stats PATH] [--progress auto|always|never]
               [--engine wazero|wasmtime]

Runs one task per line of the input (JSON Lines: each line is one JSON value,
and its bytes are the task's input) and writes one JSON object per line, in
input order:

  {"index":N,"status":"ok|error|killed|memory_limit|timeout","output":V,"error":"...","attempts":N}

The whole input is read and checked before any task runs: a blank line or a
line that is not JSON stops the run with exit code 2, naming the line.

Flags:
  --module PATH      the .wasm module (required): an SDK module or a WASI command
  --func NAME        the handler to run, for SDK modules; leave it out for a
                     WASI command, which gets each line on stdin
  --workers N        worker processes (default: one per CPU)
  --spares N         extra workers kept started and idle, to replace a killed
                     worker at once instead of after a start-up (default 0)
  --memory SIZE      each task's linear-memory cap, such as 64MiB, 512KiB,
                     1GiB, 64MB or 67108864 (default 64MiB)
  --timeout DUR      each task's deadline, such as 500ms or 2s (default: none)
  --on-kill POLICY   what happens to a killed task (status killed, memory_limit
                     or timeout): skip keeps going (default), abort stops the
                     run with exit code 1, retry runs the task again
  --retries N        with --on-kill retry: the most times a task runs, the
                     first included (default 3); a task that hit its memory
                     cap is retried with twice the cap, up to 8 times --memory
  --in PATH          the input (default stdin)
  --out PATH         the results (default stdout)
  --killed PATH      also write one line per killed task:
                     {"index":N,"input":V,"status":"...","reason":"...","attempts":N}
  --stats PATH       also write one line per task: index, start, end, worker_pid,
                     attempts, peak_memory, memory_limit, status
  --progress MODE    auto (a bar and a summary on stderr when it is a
                     terminal), always or never (default auto)
  --engine NAME      the WebAssembly engine: wazero (default) or wasmtime
                     (only in binaries built with -tags wasmtime, which needs cgo)
`

const inspectHelp = `Usage:
  safepool inspect PATH

Shows a module's size, sha256, imports and exports, and its kind: sdk (a
safepool SDK module; its handlers are listed), command (a WASI command) or
unusable, with the reason and what to do. Exits with code 2 when the module
is unusable.
`

// helpCommand is 'safepool help [COMMAND]'.
func helpCommand(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return nil
	}
	switch args[0] {
	case "run":
		fmt.Fprint(stdout, runHelp)
	case "inspect":
		fmt.Fprint(stdout, inspectHelp)
	default:
		return usageErrorf("help: no command %q; the commands are run, inspect, version and help", args[0])
	}
	return nil
}

// versionCommand is 'safepool version': the module version this binary was
// built from ("devel" for a build from a work tree), and the Go and wazero
// versions it was built with.
func versionCommand(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return usageErrorf("version takes no arguments")
	}
	version, wazero := "devel", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = v
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				wazero = d.Version
			}
		}
	}
	fmt.Fprintf(stdout, "safepool %s (%s, wazero %s, %s/%s)\n", version, runtime.Version(), wazero, runtime.GOOS, runtime.GOARCH)
	return nil
}
