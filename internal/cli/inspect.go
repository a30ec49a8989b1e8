package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/safepool/safepool/module"
	"github.com/safepool/safepool/pool"
)

// moduleReport is what 'safepool inspect' shows.
type moduleReport struct {
	path     string
	size     int
	sha256   string
	kind     string // sdk, command or unusable
	why      string // unusable only: what is wrong and what to do
	batch    bool
	handlers []string
	imports  []module.Func
	exports  []module.Func
}

// inspectCommand is 'safepool inspect PATH'. It exits with code 2 when the
// module cannot run.
func inspectCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("safepool inspect", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, inspectHelp)
			return nil
		}
		return usageErrorf("inspect: %v; run 'safepool inspect -h' for help", err)
	}
	if fs.NArg() != 1 {
		return usageErrorf("inspect takes one module path, such as 'safepool inspect tasks.wasm'")
	}
	path := fs.Arg(0)
	wasm, err := os.ReadFile(path)
	if err != nil {
		return usageErrorf("inspect: %v; pass the path of a compiled .wasm file", err)
	}
	rep := inspectModule(path, wasm)
	rep.print(stdout)
	if rep.kind == "unusable" {
		return silentExit(exitUsage)
	}
	return nil
}

// inspectModule checks the module the way a pool does, and for an SDK module
// starts one worker to learn its handlers: a module can pass the static
// checks and still fail when it starts.
func inspectModule(path string, wasm []byte) *moduleReport {
	ctx := context.Background()
	sum := sha256.Sum256(wasm)
	rep := &moduleReport{path: path, size: len(wasm), sha256: hex.EncodeToString(sum[:])}
	info, err := module.Inspect(ctx, wasm)
	if err != nil {
		rep.kind, rep.why = "unusable", err.Error()
		// Inspect gives no details with its error; list what can be read,
		// so the report shows the import or export at fault.
		if d := module.Describe(wasm); d != nil {
			rep.imports, rep.exports = d.Imports, d.Exports
		}
		return rep
	}
	rep.kind, rep.batch, rep.imports, rep.exports = info.Kind.String(), info.Batch, info.Imports, info.Exports
	if info.Kind != module.KindSDK {
		return rep
	}
	p, err := pool.New(context.Background(), pool.Config{Module: path, Workers: 1, WorkerCommand: workerCommand("")})
	if err != nil {
		rep.kind, rep.why = "unusable", fmt.Sprintf("the module passes the static checks but cannot start: %v", err)
		return rep
	}
	rep.handlers = p.Handlers()
	p.Terminate()
	return rep
}

var kindNotes = map[string]string{
	"sdk":      "a safepool SDK module: one instance serves many tasks; pick a handler with --func",
	"command":  "a WASI command: each task runs the program with its input on stdin, and its stdout is the output",
	"unusable": "safepool cannot run this module",
}

func (rep *moduleReport) print(w io.Writer) {
	fmt.Fprintf(w, "module    %s\n", rep.path)
	fmt.Fprintf(w, "size      %d bytes\n", rep.size)
	fmt.Fprintf(w, "sha256    %s\n", rep.sha256)
	fmt.Fprintf(w, "kind      %s (%s)\n", rep.kind, kindNotes[rep.kind])
	if rep.why != "" {
		fmt.Fprintf(w, "why       %s\n", rep.why)
	}
	if rep.kind == "sdk" {
		batch := "no"
		if rep.batch {
			batch = "yes"
		}
		fmt.Fprintf(w, "batch     %s\n", batch)
		fmt.Fprintf(w, "handlers  %s\n", strings.Join(rep.handlers, ", "))
	}
	fmt.Fprintf(w, "imports   %d\n", len(rep.imports))
	for _, f := range rep.imports {
		fmt.Fprintf(w, "  %s\n", f)
	}
	fmt.Fprintf(w, "exports   %d\n", len(rep.exports))
	for _, f := range rep.exports {
		fmt.Fprintf(w, "  %s\n", f)
	}
	switch rep.kind {
	case "sdk":
		fn := "NAME"
		if len(rep.handlers) > 0 {
			fn = rep.handlers[0]
		}
		fmt.Fprintf(w, "run it    safepool run --module %s --func %s < tasks.jsonl\n", rep.path, fn)
	case "command":
		fmt.Fprintf(w, "run it    safepool run --module %s < tasks.jsonl\n", rep.path)
	}
}
