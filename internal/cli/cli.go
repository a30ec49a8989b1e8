// Package cli is the safepool command line: run, serve, inspect, report,
// version, help and worker. Two thin main packages call [Main]: cmd/safepool, in this
// module, which has wazero only, and engine/wasmtime/cmd/safepool, in the
// wasmtime module, which imports that engine too. The engines a binary can
// run are those its main package imports, never this package's choice, so
// that this module never requires wasmtime-go.
//
// cmd/safepool/README.md is the command's contract: flags, the output
// records and the exit codes.
package cli

import (
	"fmt"
	"io"

	"github.com/safepool/safepool/sandbox"
)

// Exit codes.
const (
	exitOK     = 0 // the run completed, skipped tasks included
	exitFailed = 1 // the run aborted or failed
	exitUsage  = 2 // bad usage, bad input or a bad module
)

// Main runs the command line args (without the program's name) and returns
// the exit code: a main package calls
//
//	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
//
// Pools started by run and inspect run their workers as 'safepool worker'
// from the same executable (os.Executable), which must therefore be a main
// package that calls Main. Main does not return for the worker command.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "run":
		err = runCommand(rest, stdin, stdout, stderr)
	case "serve":
		err = serveCommand(rest, stdout, stderr)
	case "inspect":
		err = inspectCommand(rest, stdout, stderr)
	case "report":
		err = reportCommand(rest, stdout, stderr)
	case "version", "--version", "-version":
		err = versionCommand(rest, stdout)
	case "help", "-h", "-help", "--help":
		err = helpCommand(rest, stdout)
	case "worker":
		// Pools started by 'safepool run' and 'safepool inspect' run their
		// workers as 'safepool worker'. Main never returns.
		sandbox.Main()
	default:
		err = usageErrorf("unknown command %q; the commands are run, serve, inspect, report, version and help (run 'safepool help')", cmd)
	}
	return report(stderr, err)
}

// report prints err, if any, and returns the exit code it stands for.
func report(stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	code := exitFailed
	if e, ok := err.(*exitError); ok {
		code = e.code
		if e.silent {
			return code
		}
	}
	fmt.Fprintln(stderr, "safepool:", err)
	return code
}
