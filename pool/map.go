package pool

import (
	"context"
	"iter"
	"runtime"
	"time"
)

// Map runs fn on every input and returns one result per input, in input
// order. It blocks until every task has a final result or the map is
// aborted.
//
// Killed tasks follow the kill policy: under Skip their slot has their
// status and no output, and Map returns a nil error; under Abort Map
// returns a *TaskError (errors.Is ErrTaskKilled). Guest errors follow
// OnError the same way.
//
// When ctx is done, Map stops the map's tasks, including those running, and
// returns ctx's error; the pool stays usable.
func (p *Pool) Map(ctx context.Context, fn string, inputs [][]byte, opts ...CallOption) ([]Result, error) {
	m, err := p.MapAsync(ctx, fn, inputs, opts...)
	if err != nil {
		return nil, err
	}
	return m.Wait(context.Background())
}

// MapAsync starts a map and returns at once. The map's life is bound to
// ctx: when ctx is done the map is aborted with ctx's error. The inputs are
// not copied and must not change until the map ends. opts set the map's
// own limits within the pool's (WithTimeout, WithMemoryLimit).
func (p *Pool) MapAsync(ctx context.Context, fn string, inputs [][]byte, opts ...CallOption) (*MapHandle, error) {
	o, err := p.callOptions(opts)
	if err != nil {
		return nil, err
	}
	r, err := p.begin(ctx, fn, len(inputs), nil)
	if err != nil {
		return nil, err
	}
	o.set(r)
	r.add(len(inputs))
	r.inputs = inputs
	p.q.pushRun(r, len(inputs)) // jobs are made as workers take them
	r.seal()
	return &MapHandle{r: r}, nil
}

// Apply runs one task and returns its result. Under Abort a killed task
// gives a *TaskError as well as the result. When the task does not run
// (an unknown function, a closed pool, ctx done) the result has
// StatusNotRun and the error says why.
func (p *Pool) Apply(ctx context.Context, fn string, input []byte, opts ...CallOption) (Result, error) {
	var rs []Result
	m, err := p.MapAsync(ctx, fn, [][]byte{input}, opts...)
	if err == nil {
		m.r.spinUntilDone(applySpin)
		rs, err = m.Wait(context.Background())
	}
	if len(rs) == 1 {
		return rs[0], err
	}
	return Result{Status: StatusNotRun, Error: notRunReason(err)}, err
}

// applySpin is how long Apply polls for its result before it sleeps: about
// twice a small task's round trip, so that most answers find their caller
// awake, and short beside a task that takes milliseconds.
const applySpin = 30 * time.Microsecond

// spinUntilDone polls for the run's end for up to budget, yielding the
// processor between looks, and returns when it has ended or the budget is
// spent. A caller that sleeps on done is woken by the goroutine that ends
// the run, and then waits for the kernel to run it again: on a busy
// machine that wait was most of a slow Apply's time after its result came
// back (see bench/README.md). A result that comes back within the budget
// finds its caller still running.
func (r *run) spinUntilDone(budget time.Duration) {
	start := time.Now()
	for {
		select {
		case <-r.done:
			return
		default:
		}
		if time.Since(start) >= budget {
			return
		}
		runtime.Gosched()
	}
}

// Imap runs fn on a stream of inputs and yields the results in input order.
// At most window inputs are pulled and not yet yielded, so a stream of any
// length runs in bounded memory; window <= 0 means 4 × Workers × BatchSize.
// The inputs are pulled on a goroutine of their own, concurrently with the
// loop body, so that results are yielded while the next input is slow to
// come (a pipe): an inputs function must not share unsynchronised state
// with the loop body. The sequence ends early, without error, when the
// caller stops ranging, and with ctx's error when ctx is done. When the
// stream is aborted (the Abort policy, ctx, Terminate, a *StartError), it
// first yields every result that finished before the abort, in input
// order (tasks that did not finish are not yielded), then the error.
func (p *Pool) Imap(ctx context.Context, fn string, inputs iter.Seq[[]byte], window int) iter.Seq2[Result, error] {
	return p.stream(ctx, fn, inputs, window, true)
}

// ImapUnordered is Imap, yielding results as they finish rather than in
// input order. After an abort it yields the results that finished before
// it, then the error.
func (p *Pool) ImapUnordered(ctx context.Context, fn string, inputs iter.Seq[[]byte], window int) iter.Seq2[Result, error] {
	return p.stream(ctx, fn, inputs, window, false)
}
