package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/safepool/safepool/internal/engine"
)

const usage = `safepool runs a WebAssembly task function over JSON Lines, in a pool of
isolated worker processes that finishes even when a worker is SIGKILLed.

Usage:
  safepool run --module PATH [--func NAME] [flags]   one task per input line
  safepool serve --listen HOST:PORT | --nats URL      run tasks for pools on other machines
  safepool inspect PATH                               what a module exports and how it runs
  safepool report --stats FILE -o report.html         an HTML timeline of a run, from its --stats
  safepool version                                    the version of this binary and its engines
  safepool help [run|serve|inspect|report]            this help, or a command's
  safepool worker                                     serve as a pool worker (started by safepool itself)

Exit codes: 0 the run completed (skipped tasks included), 1 it stopped early
(an abort, an interrupt, workers that could not be kept up), 2 bad usage, a
bad module, or bad input lines (reported after the other lines ran).

Run 'safepool help run' for the flags of run, 'safepool help serve' for
those of serve.
`

const runHelp = `Usage:
  safepool run --module PATH [--func NAME] [--in PATH] [--out PATH] [--resume] [flags]

Runs one task per line of the input and writes one JSON object per line, in
input order, as the run goes:

  {"index":N,"status":"ok|error|killed|memory_limit|timeout|not_run","output":V,"error":"...","attempts":N}

The input is read as tasks are needed, and each record is written (and
flushed) as soon as every line before it has one, so the run's memory stays
flat however long the input is. A kill of the CLI leaves whole records in
input order in --out (at most a partial last line, which --resume removes).

A line that is not a task (blank, not JSON, ...) gets a record of its own:
status error, attempts 0, and an error naming the line and the problem. The
other lines still run, and the run exits with code 2 at the end. Blank lines
at the end of the input are not tasks.

Input and output (--encoding):
  json (default)     each line is one JSON value, and its bytes are the
                     task's input; an output is written as is when it is
                     JSON, as a string when it is other UTF-8 text; an output
                     that is not UTF-8 gives status error and a message
  base64             each line is a JSON string of base64, and the bytes it
                     holds are the input; each output is a string of base64,
                     so any bytes go in and out unchanged

Flags:
  --module PATH      the .wasm module (required): an SDK module or a WASI command
  --func NAME        the handler to run, for SDK modules; leave it out for a
                     WASI command, which gets each line on stdin
  --in PATH          the input (default stdin)
  --out PATH         the records (default stdout)
  --resume           go on from where an interrupted run left --out: keep its
                     whole records in order, drop the rest (a partial last
                     line, not_run records on), pass over that many input
                     lines and append; --killed and --stats are cut back to
                     match and appended to. Needs --out; a missing file
                     starts from the first line
  --killed PATH      also write one line per killed task, with its input:
                     {"index":N,"input":V,"status":"...","reason":"...","attempts":N}
  --stats PATH       also write one line per record: index, start, end,
                     worker_pid, attempts, peak_memory, memory_limit, status,
                     and on a cluster agent and host
  --encoding ENC     json (default) or base64: see above
  --workers N        worker processes; 0 (the default) means one per CPU
  --spares N         extra workers kept started and idle, to replace a killed
                     worker at once instead of after a start-up (default 0)
  --memory SIZE      each task's linear-memory cap, such as 64MiB, 512KiB,
                     1GiB, 64MB or 67108864 (default 64MiB)
  --timeout DUR      each task's deadline, a Go duration such as 500ms, 2s or
                     1m30s (default: none)
  --on-kill POLICY   what happens to a killed task (status killed, memory_limit
                     or timeout): skip keeps going (default), abort stops the
                     run with exit code 1, retry runs the task again
  --on-error POLICY  the same for a task whose guest returned an error,
                     panicked or trapped (status error): skip (default),
                     abort or retry
  --retries N        with --on-kill retry or --on-error retry: the most times
                     a task runs, the first included (default 3); a task that
                     hit its memory cap is retried with twice the cap, up to
                     8 times --memory
  --fresh-instance   give every task a new WebAssembly instance, so that no
                     state leaks from one task to the next (slower)
  --env KEY=VALUE    grant the guest an environment variable (repeatable);
                     a variable not granted is invisible
  --arg VALUE        grant the guest an argument, after the program name
                     (repeatable, in order)
  --dir HOST:GUEST   grant a host directory, read-only, at GUEST (repeatable);
                     HOST:GUEST:rw lets the guest write to it. Nothing
                     outside a granted directory is reachable
  --max-tasks-per-worker N
                     replace a worker after it ran about N tasks (it finishes
                     the batch it is in); 0 (the default) never
  --output-limit SIZE
                     the largest output a task may return, 1B to 1GiB
                     (default 16MiB); a larger one gives status error
  --start-timeout DUR
                     how long a worker may take to start (default 30s)
  --start-give-up DUR
                     how long workers may keep dying as they start (killed
                     from outside, say by the OOM killer) before the run
                     fails with exit code 1 (default 10s)
  --overcommit       start --workers (plus --spares) even when the machine's
                     available memory cannot hold them at --memory each
  --progress MODE    auto (a progress line and a summary on stderr when it is
                     a terminal), always or never (default auto)
  --engine NAME      the WebAssembly engine: wazero (default) or wasmtime;
                     wasmtime is only in the wasmtime build of safepool, which
                     needs cgo: go install
                     github.com/safepool/safepool/engine/wasmtime/cmd/safepool@latest
                     ('safepool version' lists the engines this binary has)
  --cache-dir DIR    the compilation cache, shared by the runs of the machine,
                     with a directory per engine in it (default
                     $XDG_CACHE_HOME/safepool, or ~/.cache/safepool)
  --metrics ADDR     serve Prometheus metrics at http://ADDR/metrics while
                     the run goes (such as 127.0.0.1:9090, or :0 for any
                     port; the address is printed on stderr): tasks by
                     status, attempts, retries, worker deaths by cause and
                     signal, restarts, queued and running tasks, durations,
                     peak memory and the workers' resident memory
  --log-level LVL    write structured logs of workers starting and dying,
                     kills, retries, breaker trips and the policy's
                     decisions to stderr: debug, info, warn or error
                     (default: no logs)

With --stats, a task that ran more than once also has "earlier_attempts":
the start, end, worker_pid, status (and signal) of each attempt before its
last, which 'safepool report' draws linked to the retry after it.

On a cluster (see 'safepool help serve'):
  --nats URL         run the tasks on the agents of these NATS servers
                     (nats://HOST:4222 or tls://, several separated by
                     commas) instead of on local workers; everything else,
                     the records, policies and exit codes, is the same
  --creds FILE       a NATS credentials file
  --nkey-seed FILE   a file holding an nkey seed
  --token TOKEN      the servers' token (or $SAFEPOOL_TOKEN, which the
                     process list does not show)
  --user NAME        a user of the servers
  --password PASS    and its password
  --tls-ca FILE      verify the servers' certificates with this CA
  --tls-cert FILE    this client's certificate, for servers that ask for one
  --tls-key FILE     and its key

Exit codes: 0 the run completed, whatever each task's status; 1 it stopped
early (an abort, Ctrl-C, workers that could not be kept up, an output that
could not be written): the output holds the records of the lines before,
and --resume goes on; 2 bad usage, a module that cannot run, or bad input
lines (after every other line ran).
`

const serveHelp = `Usage:
  safepool serve --listen HOST:PORT [--store DIR] [--routes URLS --cluster-listen HOST:PORT]
                 [--token TOKEN | --user NAME --password PASS | --nkey PUBKEY] [flags]
  safepool serve --nats URL [--creds FILE | --nkey-seed FILE | --token TOKEN] [flags]

Runs tasks for pools on other machines ('safepool run --nats URL', or
programs whose pool.Config.Cluster names the servers). With --listen it runs
a NATS server with JetStream and an agent beside it; with --nats an agent
only, for existing servers. An agent runs the tasks it takes on local worker
processes, with the same sandbox, caps and statuses as a local run.

SIGINT or SIGTERM stops it: the agent gives the work it holds back to its
pools, which send it elsewhere, its workers stop, and the server shuts down.
Its workers die with it when it is killed.

The server (--listen):
  --listen HOST:PORT the client address, such as 127.0.0.1:4222; an address
                     other machines reach (0.0.0.0:4222) needs --token,
                     --user and --password, or --nkey
  --store DIR        JetStream's files (default $XDG_CACHE_HOME/safepool/nats)
  --cluster-listen HOST:PORT
                     this server's cluster address, such as 0.0.0.0:6222
  --routes URLS      the cluster addresses of every server of the cluster,
                     such as nats://h1:6222,nats://h2:6222,nats://h3:6222;
                     tasks and modules are then kept on up to three servers
  --cluster-name NAME
                     the cluster's name (default safepool)
  --token TOKEN      what clients must present (or $SAFEPOOL_TOKEN); routes
                     between servers use it too
  --user NAME, --password PASS
                     the same, as a user and password
  --nkey PUBKEY      users' public nkeys (U...), separated by commas
  --tls-cert FILE, --tls-key FILE
                     serve clients over TLS
  --tls-ca FILE      and require client certificates signed by this CA

The agent alone (--nats):
  --nats URL         the servers, nats://HOST:4222 or tls://, separated by
                     commas
  --creds FILE, --nkey-seed FILE, --token TOKEN, --user NAME, --password PASS,
  --tls-ca FILE, --tls-cert FILE, --tls-key FILE
                     how to connect, as for 'safepool run --nats'

Both:
  --workers N        worker processes; 0 (the default) means one per CPU
  --spares N         extra workers kept started and idle (default 0)
  --memory SIZE      the largest memory cap of a task this agent takes, such
                     as 1GiB (default: any)
  --name NAME        the agent's name in messages (default HOST-PID)
  --cache-dir DIR    the compilation cache (default $XDG_CACHE_HOME/safepool)
  --metrics ADDR     serve the agent's Prometheus metrics at http://ADDR/metrics
                     (attempts, durations, worker starts and deaths); :0
                     picks a port, printed on stderr
  --log-level LEVEL  structured logs on stderr: debug, info, warn or error

Exit codes: 0 stopped by a signal; 1 the server or the agent failed; 2 bad
usage, such as a public address without authentication.
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
	case "serve":
		fmt.Fprint(stdout, serveHelp)
	case "inspect":
		fmt.Fprint(stdout, inspectHelp)
	case "report":
		fmt.Fprint(stdout, reportHelp)
	default:
		return usageErrorf("help: no command %q; the commands are run, serve, inspect, report, version and help", args[0])
	}
	return nil
}

// versionCommand is 'safepool version': the module version this binary was
// built from ("devel" for a build from a work tree), the Go version and
// platform, and the engines built in, each with the version of the module
// that provides it:
//
//	safepool v1.2.3 (go1.26.8, linux/amd64, engines: wazero v1.12.0, wasmtime v39.0.1)
func versionCommand(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return usageErrorf("version takes no arguments")
	}
	version := "devel"
	var deps []*debug.Module
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = v
		}
		deps = bi.Deps
	}
	var engines []string
	for _, name := range engine.Names() {
		engines = append(engines, name+" "+engineVersion(name, deps))
	}
	fmt.Fprintf(stdout, "safepool %s (%s, %s/%s, engines: %s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH, strings.Join(engines, ", "))
	return nil
}

// engineModules are the modules that implement the engines, by engine name;
// a path ending in "/" matches every major version.
var engineModules = map[string]string{
	engine.Wazero:   "github.com/tetratelabs/wazero",
	engine.Wasmtime: "github.com/bytecodealliance/wasmtime-go/",
}

// engineVersion is the version of the module that implements the engine
// called name, among deps, or "unknown".
func engineVersion(name string, deps []*debug.Module) string {
	path, ok := engineModules[name]
	if !ok {
		return "unknown"
	}
	for _, d := range deps {
		if d.Path == path || strings.HasSuffix(path, "/") && strings.HasPrefix(d.Path, path) {
			if d.Replace != nil && d.Replace.Version != "" {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return "unknown"
}
