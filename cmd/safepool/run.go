package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/safepool/safepool/pool"
)

// runCommand is 'safepool run': one task per input line, one result per
// task, in input order.
//
// The steps run in this order so that every usage error (exit 2) comes
// before the first task runs: flags, module (the pool starts), function,
// input (read whole and checked), output files. Only then do tasks run.
func runCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := parseRunFlags(args, stdout)
	if err != nil || o == nil {
		return err
	}
	p, err := startPool(o.config(workerCommand()), o.module)
	if err != nil {
		return err
	}
	// Terminate is a no-op after a Close that finished.
	defer p.Terminate()
	fn, err := checkFunc(p, o)
	if err != nil {
		return err
	}
	tasks, err := readInput(o.in, stdin, stderr)
	if err != nil {
		return err
	}
	out, err := openSinks(o, stdout)
	if err != nil {
		return err
	}

	// The first Ctrl-C aborts the map and writes what finished; a second
	// one, after stop, ends the program at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	m, err := p.MapAsync(ctx, fn, tasks)
	if err != nil {
		out.close()
		return failedErrorf("run: %v", err)
	}
	bar := startProgress(o.progress, stderr, m)
	results, runErr := m.Wait(context.Background())
	stop()
	elapsed := time.Since(start)

	killed := m.KilledTasks()
	slices.SortFunc(killed, func(a, b pool.KilledTask) int { return a.Index - b.Index })
	if runErr == nil && pool.Policy(o.onKill) == pool.Abort && len(killed) > 0 {
		// A map whose last task is the one that aborts it can end as if
		// it completed; under abort any killed task fails the run.
		kt := killed[0]
		runErr = &pool.TaskError{Index: kt.Index, Func: kt.Func, Input: kt.Input, Status: kt.Status, Reason: kt.Reason, Attempts: len(kt.Attempts)}
	}
	bar.finish(results, elapsed, runErr != nil)
	werr := out.writeAll(results, killed)
	if cerr := out.close(); werr == nil {
		werr = cerr
	}
	if runErr != nil {
		return runFailure(runErr, results)
	}
	if werr != nil {
		return werr
	}
	return p.Close()
}

// workerCommand is how the pool starts workers: this same executable, as
// 'safepool worker'. Without a path to it the pool's default applies, which
// re-executes the current binary as well.
func workerCommand() []string {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	return []string{exe, "worker"}
}

// startPool starts the pool. Everything that stops it from starting is
// about the module or the flags, so it exits with code 2.
func startPool(cfg pool.Config, module string) (*pool.Pool, error) {
	p, err := pool.New(context.Background(), cfg)
	switch {
	case err == nil:
		return p, nil
	case errors.Is(err, os.ErrNotExist):
		return nil, usageErrorf("--module %s: no such file; pass the path of a compiled .wasm file", module)
	case errors.Is(err, pool.ErrConfig):
		return nil, usageErrorf("run: %v; run 'safepool run -h' for the flags", err)
	}
	return nil, usageErrorf("%v\nthe module cannot run; 'safepool inspect %s' shows what it imports and exports", err, module)
}

// checkFunc checks --func against the module: an SDK module needs one of
// its handlers, a command module takes none.
func checkFunc(p *pool.Pool, o *runOptions) (string, error) {
	handlers := p.Handlers()
	switch {
	case handlers == nil && o.fn != "":
		return "", usageErrorf("--func %s: %s is a WASI command module, which has no handlers: each task runs the whole program with its line on stdin; drop --func", o.fn, o.module)
	case handlers == nil:
		return "", nil
	case len(handlers) == 0:
		return "", usageErrorf("%s registers no handlers; register one with guest.Handle in the module's init function", o.module)
	case o.fn == "":
		return "", usageErrorf("%s is an SDK module; pick its handler with --func NAME, one of: %s", o.module, strings.Join(handlers, ", "))
	case !slices.Contains(handlers, o.fn):
		return "", usageErrorf("--func %s: %s has no such handler; use one of: %s", o.fn, o.module, strings.Join(handlers, ", "))
	}
	return o.fn, nil
}

// readInput reads the tasks from path, or from stdin when path is empty.
func readInput(path string, stdin io.Reader, stderr io.Writer) ([][]byte, error) {
	if path == "" {
		if f, ok := stdin.(*os.File); ok && isTerminal(f) {
			fmt.Fprintln(stderr, "safepool: reading tasks from the terminal, one JSON value per line; end with Ctrl-D (or pass --in PATH)")
		}
		return readTasks(stdin, "stdin")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, usageErrorf("--in: %v; pass a JSON Lines file, or leave --in out to read stdin", err)
	}
	defer f.Close()
	return readTasks(f, path)
}

// runFailure explains why a run ended early. The records of the tasks that
// finished were written before it.
func runFailure(err error, results []pool.Result) error {
	finished := 0
	for _, r := range results {
		if r.Status != 0 {
			finished++
		}
	}
	var te *pool.TaskError
	switch {
	case errors.As(err, &te):
		// The reason's first line only: the rest, such as a guest's stack
		// dump, is in the output records.
		reason, _, _ := strings.Cut(te.Reason, "\n")
		return failedErrorf("run aborted: task %d (input %s) ended with %s after %d attempt(s): %s\n"+
			"the output holds the %d task(s) that finished; --on-kill skip goes on past killed tasks and --on-kill retry runs them again",
			te.Index, brief(te.Input), te.Status, te.Attempts, reason, finished)
	case errors.Is(err, context.Canceled):
		return failedErrorf("run interrupted; the output holds the %d task(s) that finished", finished)
	case errors.Is(err, pool.ErrCrashLoop):
		return failedErrorf("run failed: %v\nworkers die as they start: check the module with 'safepool inspect' and the machine's free memory", err)
	}
	return failedErrorf("run failed: %v", err)
}

// brief shortens an input for a message.
func brief(b []byte) string {
	const most = 60
	if len(b) <= most {
		return string(b)
	}
	return string(b[:most]) + "..."
}
