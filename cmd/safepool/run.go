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

	"github.com/safepool/safepool/internal/worker"
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
	// The first Ctrl-C aborts the map and writes what finished; a second
	// one, after stop, ends the program at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := startPool(ctx, o)
	if err != nil {
		return err
	}
	// Terminate is a no-op after a Close that finished.
	defer p.Terminate()
	warned := warn(stderr, p, 0)
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
	bar.finish(results, elapsed, runErr != nil)
	werr := out.writeAll(results, killed)
	if cerr := out.close(); werr == nil {
		werr = cerr
	}
	warn(stderr, p, warned)
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

// startPool starts the pool. Workers that cannot be kept up, a start
// timeout and an interrupt exit with code 1; everything else that stops it
// from starting is about the module or the flags, and exits with code 2.
func startPool(ctx context.Context, o *runOptions) (*pool.Pool, error) {
	p, err := pool.New(ctx, o.config(workerCommand()))
	var se *pool.StartError
	switch {
	case err == nil:
		return p, nil
	case errors.As(err, &se):
		return nil, failedErrorf("run failed: %s; nothing ran", startFailure(se))
	case ctx.Err() != nil:
		return nil, failedErrorf("run interrupted while the workers started; nothing ran")
	case errors.Is(err, worker.ErrStartTimeout):
		limit := "30s, the default"
		if o.startTimeout > 0 {
			limit = o.startTimeout.String()
		}
		return nil, failedErrorf("run failed: %v\nworkers did not start within --start-timeout (%s); raise it if the machine is slow or busy", err, limit)
	case errors.Is(err, os.ErrNotExist):
		return nil, usageErrorf("--module %s: no such file; pass the path of a compiled .wasm file", o.module)
	case errors.Is(err, pool.ErrConfig):
		return nil, usageErrorf("run: %v; run 'safepool run -h' for the flags", err)
	}
	return nil, usageErrorf("%v\nthe module cannot run; 'safepool inspect %s' shows what it imports and exports", err, o.module)
}

// startFailure explains a *pool.StartError. Kills from outside are said to
// be so: they are never the module's fault.
func startFailure(se *pool.StartError) string {
	if !se.Usable {
		return se.Error()
	}
	return fmt.Sprintf("pool: workers %s: %d times in %s; something outside safepool (the OOM killer, an operator) kills them: free memory or lower --workers, or allow longer with --start-give-up",
		se.What, se.Count, se.Over.Round(10*time.Millisecond))
}

// warn prints the pool's warnings after the first done of them, and
// returns how many there are.
func warn(stderr io.Writer, p *pool.Pool, done int) int {
	ws := p.Warnings()
	for _, w := range ws[min(done, len(ws)):] {
		fmt.Fprintln(stderr, "safepool: warning:", w)
	}
	return len(ws)
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
		how := "--on-kill skip goes on past killed tasks and --on-kill retry runs them again"
		if te.Status == pool.StatusError {
			how = "--on-error skip goes on past failed tasks and --on-error retry runs them again"
		}
		return failedErrorf("run aborted: task %d (input %s) ended with %s after %d attempt(s): %s\n"+
			"the output holds the %d task(s) that finished; %s",
			te.Index, brief(te.Input), te.Status, te.Attempts, reason, finished, how)
	case errors.Is(err, context.Canceled):
		return failedErrorf("run interrupted; the output holds the %d task(s) that finished", finished)
	}
	var se *pool.StartError
	if errors.As(err, &se) {
		return failedErrorf("run failed: %s\nthe output holds the %d task(s) that finished", startFailure(se), finished)
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
