package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/pool"
)

// runCommand is 'safepool run': one task per input line and one record per
// line, in input order, written as the run goes.
//
// Every usage error (exit 2) comes before the first task runs: flags,
// input, the --resume point, the module (the pool starts), the function,
// the output files. Bad input lines are found as the input is read: each
// gets a record saying why, and the run exits with code 2 at the end.
func runCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := parseRunFlags(args, stdout)
	if err != nil || o == nil {
		return err
	}
	// The run's garbage is short-lived (lines, results, records): collect
	// it less often than the default, which cost a fifth of the CLI's CPU
	// over short tasks, with a soft limit that brings the default back
	// when the heap grows large (huge lines).
	debug.SetGCPercent(400)
	debug.SetMemoryLimit(gcSoftLimit)
	name, in, closeIn, err := openInput(o.in, stdin, stderr)
	if err != nil {
		return err
	}
	defer closeIn()
	var at resumePoint
	if o.resume {
		if at, err = readResumePoint(o.out); err != nil {
			return err
		}
	}

	// The first Ctrl-C or SIGTERM stops the run, which writes what
	// finished; from then on the signals have their default effect, so a
	// second one ends the program at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)

	obs, err := startObserving(o, stderr)
	if err != nil {
		return err
	}
	defer obs.close()
	p, err := startPool(ctx, o)
	if err != nil {
		return err
	}
	defer p.Terminate() // a no-op after a Close that finished
	obs.watch(p)
	warned := warn(stderr, p, 0)
	fn, err := checkFunc(p, o)
	if err != nil {
		return err
	}
	out, stats, killed, err := openOutputs(o, stdout, &at)
	if err != nil {
		return err
	}
	r := &run{o: o, name: name, at: at, stderr: stderr}
	err = r.tasks(ctx, p, fn, in, out, stats, killed)
	warn(stderr, p, warned)
	if err != nil {
		return err
	}
	return p.Close()
}

// gcSoftLimit is the heap size past which the run collects garbage as
// often as Go's default would.
const gcSoftLimit = 128 << 20

// run is one 'safepool run' once everything is open.
type run struct {
	o      *runOptions
	name   string // the input's, for messages
	at     resumePoint
	stderr io.Writer
	w      *writer
	m      *merger
}

// tasks runs the input through the pool and writes the records, then says
// how the run ended: nil when it completed without bad input lines.
func (r *run) tasks(ctx context.Context, p *pool.Pool, fn string, in io.Reader, out, stats, killed *lineFile) error {
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w := newWriter(out, stats, killed, func() { cancel(errWrite) })
	r.w, r.m = w, newMerger(r.o, newEncoder(r.o), w)
	src := newSource(r.name, in, r.at.records)
	file, _ := in.(*os.File)
	bar := startProgress(r.o.progress, r.stderr, &w.counts, r.at.records, file)
	if bar != nil && r.o.resume {
		fmt.Fprintln(r.stderr, r.resumeNote())
	}
	start := time.Now()

	runErr := newPipeline(runCtx, cancel, r.o, p, fn, src, r.m).run()
	r.m.finish(runErr, ctx.Err() != nil)
	werr := r.m.close()
	if st := r.m.stopped(); runErr == nil && st != nil {
		// The policy says the run stopped, whatever ended the maps.
		runErr = &pool.TaskError{Index: st.pool, Status: st.res.Status, Reason: st.res.Error, Attempts: st.res.Attempts}
	}
	short, readErr := src.end()
	stopped := runErr != nil || werr != nil || short != nil || readErr != nil
	bar.finish(end{aborted: stopped, elapsed: time.Since(start)})
	r.noteNotUTF8()

	switch {
	case werr != nil:
		return failedErrorf("%v\n%s", werr, r.held("fix that first"))
	case short != nil && runErr == nil:
		return short
	case readErr != nil && runErr == nil:
		return failedErrorf("read %s: %v\n%s", r.name, readErr, r.held(""))
	case runErr != nil:
		return r.failure(runErr, ctx.Err() != nil)
	}
	return r.badInput()
}

// held says what the output holds after a run that stopped early, then
// hint, if any, then how to go on.
func (r *run) held(hint string) string {
	n := r.at.records + int(r.w.counts.done.Load())
	where := "stdout"
	if r.o.out != "" {
		where = r.o.out
	}
	s := fmt.Sprintf("%s holds the records of the first %d line(s)", where, n)
	if k := r.w.counts.notRun.Load(); k > 0 {
		s += fmt.Sprintf(", %d of them not_run", k)
	}
	if hint != "" {
		s += "; " + hint
	}
	if r.o.out == "" {
		return s + "; with --out PATH instead of stdout, a run can go on later with --resume"
	}
	return s + "; run the same command with --resume to go on from there"
}

// failure explains why the run stopped before the end of its input.
func (r *run) failure(err error, interrupted bool) error {
	var te *pool.TaskError
	var se *pool.StartError
	switch {
	case errors.As(err, &te):
		line, input := 0, []byte(nil)
		if s := r.m.stopped(); s != nil && s.pool == te.Index {
			line, input = s.line, s.input
		}
		// The reason's first line only: the rest, such as a guest's stack
		// dump, is in the record.
		reason := firstLine(te.Reason)
		how := "--on-kill skip goes on past killed tasks and --on-kill retry runs them again"
		if te.Status == pool.StatusError {
			how = "--on-error skip goes on past failed tasks and --on-error retry runs them again"
		}
		return failedErrorf("run aborted: line %d (input %s) ended with %s after %d attempt(s): %s\n%s",
			line, brief(input, r.o.encoding), te.Status, te.Attempts, reason, r.held(how))
	case errors.As(err, &se):
		return failedErrorf("run failed: %s\n%s", startFailure(se), r.held(""))
	case interrupted, errors.Is(err, context.Canceled):
		return failedErrorf("run interrupted; %s", r.held(""))
	}
	return failedErrorf("run failed: %v\n%s", err, r.held(""))
}

// badInput reports the bad input lines, if any, once every record is
// written: they make the run exit with code 2.
func (r *run) badInput() error {
	now, before := int(r.w.counts.bad.Load()), r.at.bad
	if now+before == 0 {
		return nil
	}
	where := "stdout"
	if r.o.out != "" {
		where = r.o.out
	}
	var msg string
	if now > 0 {
		named := make([]string, len(r.m.badLines))
		for i, n := range r.m.badLines {
			named[i] = strconv.Itoa(n)
		}
		if now > len(named) {
			named = append(named, "...")
		}
		which := "line "
		if now > 1 {
			which = "lines "
		}
		msg = fmt.Sprintf("bad input: %d line(s) of %s are not tasks (%s%s); the first: %s",
			now, r.name, which, strings.Join(named, ", "), r.m.firstBad)
	}
	if before > 0 {
		if msg != "" {
			msg += "\n"
		}
		msg += fmt.Sprintf("bad input: the run this one resumes found %d line(s) that are not tasks, the first on line %d", before, r.at.badLine)
	}
	return usageErrorf("%s\nthe other lines ran; each bad line has a record in %s that says why (status error, attempts 0): fix those lines and run them again", msg, where)
}

// noteNotUTF8 says, once, how many outputs could not be written as JSON.
func (r *run) noteNotUTF8() {
	if n := r.w.counts.notUTF8.Load(); n > 0 {
		fmt.Fprintf(r.stderr, "safepool: %d task output(s) are not valid UTF-8, so their records have status error instead of the output; run with --encoding base64 to get the bytes\n", n)
	}
}

// resumeNote says where a run with --resume goes on from.
func (r *run) resumeNote() string {
	s := fmt.Sprintf("safepool: resuming %s after %d record(s)", r.o.out, r.at.records)
	if r.at.cut > 0 {
		s += fmt.Sprintf("; cut off %d byte(s) the interrupted run left unfinished (a partial last line, or not_run records on)", r.at.cut)
	}
	return s
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

// workerCommand is how a pool starts workers for engine: the lean worker
// executable safepool-worker when it sits next to this one and the engine
// is wazero (it has no other), else this same executable, as 'safepool
// worker'. A worker that re-executes this binary pays for every package
// linked into it at each start, NATS among them (see cmd/safepool-worker).
// Without a path to this executable the pool's default applies, which
// re-executes the current binary as well.
func workerCommand(engineName string) []string {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	if engineName == "" || engineName == engine.Wazero {
		lean := filepath.Join(filepath.Dir(exe), leanWorker)
		if fi, err := os.Stat(lean); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return []string{lean}
		}
	}
	return []string{exe, "worker"}
}

// leanWorker is the name of the lean worker executable, cmd/safepool-worker.
const leanWorker = "safepool-worker"

// startPool starts the pool. Workers that cannot be kept up, a start
// timeout and an interrupt exit with code 1; everything else that stops it
// from starting is about the module or the flags, and exits with code 2.
func startPool(ctx context.Context, o *runOptions) (*pool.Pool, error) {
	p, err := pool.New(ctx, o.config(workerCommand(o.engine)))
	var se *pool.StartError
	switch {
	case err == nil:
		return p, nil
	case errors.As(err, &se):
		return nil, failedErrorf("run failed: %s; nothing ran", startFailure(se))
	case ctx.Err() != nil:
		return nil, failedErrorf("run interrupted while the workers started; nothing ran")
	case errors.Is(err, pool.ErrNoAgent), errors.Is(err, pool.ErrCluster):
		return nil, failedErrorf("run failed: %v; nothing ran", err)
	case errors.Is(err, pool.ErrStartTimeout):
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

// brief shortens an input for a message, in the form its line had.
func brief(b []byte, enc encoding) string {
	s := string(inputValue(b, enc))
	const most = 60
	if len(s) <= most {
		return s
	}
	return s[:most] + "..."
}

// firstLine returns s up to its first newline.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
