package pool

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/safepool/safepool/module"
)

// Pool runs tasks in worker processes. It is safe for concurrent use.
//
// The pool owns the policy: its queue holds the jobs waiting to run, its
// dispatcher runs them and hands back each attempt's outcome (settle), and
// settle decides, by the policy, whether the outcome is final, runs again
// or aborts its map. Each map is a run, which owns its result slots and
// its killed-task list and tells the pool through hooks when it ends.
type Pool struct {
	cfg      Config
	kind     module.Kind // from the workers' handshake
	handlers map[string]bool
	tmpDir   string // holds ModuleBytes written out for the workers

	q         *queue
	disp      dispatcher
	hooks     *runHooks
	sharedObs sharedObs // TaskRecords of outcomes that bring no buffer (taskobserver.go)
	tally     *Tally    // the TaskObserver's, when it is a Tallier

	mu          sync.Mutex
	closed      bool
	runs        map[*run]struct{}
	lastRun     uint64 // the last run's id (Event.Map)
	runsDone    *sync.Cond
	killed      []KilledTask // the most recent, at most cfg.KilledLimit
	killedCount int          // every killed task, kept or not
	warnings    []string
}

// failAll aborts every run with err. The dispatcher calls it when its
// breaker opens.
func (p *Pool) failAll(err error) {
	p.noteTrip(err)
	p.mu.Lock()
	runs := make([]*run, 0, len(p.runs))
	for r := range p.runs {
		runs = append(runs, r)
	}
	p.mu.Unlock()
	for _, r := range runs {
		r.abort(err)
	}
}

// Err reports whether the pool can run maps now: nil when it can, or the
// *StartError that ended the maps waiting for workers. When that error's
// Usable is true the pool keeps starting workers, and Err returns nil again
// once one stays up. After Close or Terminate it returns ErrClosed.
func (p *Pool) Err() error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return p.disp.err()
}

// Warnings returns what the pool noticed that costs speed but not
// correctness, such as a compilation cache it cannot write to. Each is
// also sent to Config.OnEvent as an EventWarning.
func (p *Pool) Warnings() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.warnings)
}

func (p *Pool) warn(msg string) {
	p.mu.Lock()
	p.warnings = append(p.warnings, msg)
	p.mu.Unlock()
	p.emit(Event{Kind: EventWarning, Reason: msg})
}

// begin registers a new run, or fails when the pool cannot take one.
func (p *Pool) begin(ctx context.Context, fn string, n int, stream chan Result) (*run, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.kind == module.KindSDK && !p.handlers[fn] {
		return nil, fmt.Errorf("%w %q: the module exports %v", ErrUnknownFunc, fn, p.handlerNames())
	}
	// The breaker is read under p.mu, where failAll reads the runs: a run
	// either sees the open breaker or is among the runs it fails.
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if err := p.disp.err(); err != nil {
		return nil, err
	}
	r := p.newRun(ctx, fn, n, stream)
	p.lastRun++
	r.id = p.lastRun
	p.runs[r] = struct{}{}
	return r, nil
}

// Handlers returns the function names an SDK module exports, or nil for a
// command module.
func (p *Pool) Handlers() []string { return p.handlerNames() }

func (p *Pool) handlerNames() []string {
	if p.handlers == nil {
		return nil
	}
	names := make([]string, 0, len(p.handlers))
	for h := range p.handlers {
		names = append(names, h)
	}
	slices.Sort(names)
	return names
}

func (p *Pool) runEnded(r *run) {
	notRun := p.noteNotRun(r)
	if r.tally != nil {
		r.tally.end(r, notRun)
	}
	p.mu.Lock()
	delete(p.runs, r)
	p.runsDone.Broadcast()
	p.mu.Unlock()
}

// stopRun stops the work in flight of an aborted run.
func (p *Pool) stopRun(r *run) { p.disp.stopRun(r) }

// recordKilled keeps kt in the pool's bounded list: its input only up to
// KilledInputLimit, copied so that the list does not pin the caller's
// buffers, and only the most recent KilledLimit tasks.
func (p *Pool) recordKilled(kt KilledTask) {
	if int64(len(kt.Input)) > p.cfg.KilledInputLimit {
		kt.Input = nil
	} else {
		kt.Input = bytes.Clone(kt.Input)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killedCount++
	if p.cfg.KilledLimit < 0 {
		return
	}
	p.killed = append(p.killed, kt)
	if n := p.cfg.KilledLimit; len(p.killed) >= 2*n {
		// Drop the oldest in one copy per n tasks, not one per task.
		p.killed = append(p.killed[:0], p.killed[len(p.killed)-n:]...)
	}
}

// KilledTasks lists the most recent killed tasks of every map this pool ran
// (at most Config.KilledLimit), in the order their final results came in:
// which tasks were killed, and why. Inputs larger than Config.KilledInputLimit
// are not kept (Input is nil, InputSize says how large it was). A map's
// own list, [MapHandle.KilledTasks], is complete.
func (p *Pool) KilledTasks() []KilledTask {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.recentKilled())
}

// TakeKilledTasks returns what KilledTasks would and clears the list, so
// that a long-lived pool can hand its killed tasks on and hold nothing.
// KilledCount is not reset.
func (p *Pool) TakeKilledTasks() []KilledTask {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := slices.Clone(p.recentKilled())
	p.killed = nil
	return out
}

// KilledCount is how many killed tasks this pool has had in all, including
// those no longer in its list.
func (p *Pool) KilledCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.killedCount
}

func (p *Pool) recentKilled() []KilledTask {
	if n := p.cfg.KilledLimit; len(p.killed) > n {
		return p.killed[len(p.killed)-n:]
	}
	return p.killed
}

// Close stops taking new work, waits for the maps in flight to finish, and
// reaps every worker. It is safe to call more than once; later calls wait
// for the first and return nil.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	for len(p.runs) > 0 {
		p.runsDone.Wait()
	}
	p.mu.Unlock()
	p.shutdown(false)
	return nil
}

// Terminate kills every worker now. Maps in flight end with ErrClosed. It is
// safe to call more than once, and after Close.
func (p *Pool) Terminate() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.failAll(ErrClosed)
	p.shutdown(true)
	return nil
}

// shutdown stops the dispatcher (with kill, its workers die now) and
// removes what New wrote.
func (p *Pool) shutdown(kill bool) {
	p.disp.close(kill)
	p.cleanup()
}

func (p *Pool) cleanup() {
	if p.tmpDir != "" {
		os.RemoveAll(p.tmpDir)
	}
}
