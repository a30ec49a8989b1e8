package pool

import (
	"context"
	"iter"
	"maps"
	"slices"
)

// stream is one Imap or ImapUnordered in flight. A reader goroutine pulls
// inputs, so that a slow input (a pipe) never holds back results: the
// stream's loop submits inputs as they come and yields results as they
// finish, whichever is first.
type stream struct {
	p       *Pool
	r       *run
	out     chan Result
	ordered bool

	// The reader takes a slot before it pulls an input, and the loop gives
	// one back for each result it yields: inputs pulled and not yet
	// yielded never exceed the window. in can hold a window of inputs, so
	// the reader never blocks sending.
	slots chan struct{}
	in    chan []byte // closed when the inputs end or the stream stops
	quit  chan struct{}

	submitted, yielded int
	exhausted          bool
	pending            map[int]Result // ordered: results ahead of their turn
}

func (p *Pool) stream(ctx context.Context, fn string, inputs iter.Seq[[]byte], window int, ordered bool) iter.Seq2[Result, error] {
	return func(yield func(Result, error) bool) {
		if window <= 0 {
			window = 4 * p.cfg.Workers * p.cfg.BatchSize
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		s := &stream{
			p: p, out: make(chan Result, window), ordered: ordered, pending: map[int]Result{},
			slots: make(chan struct{}, window), in: make(chan []byte, window), quit: make(chan struct{}),
		}
		var err error
		if s.r, err = p.begin(ctx, fn, 0, s.out); err != nil {
			yield(Result{}, err)
			return
		}
		defer s.r.abort(context.Canceled) // a no-op when the run ended normally
		for range window {
			s.slots <- struct{}{}
		}
		go s.read(inputs)
		defer close(s.quit)
		s.run(yield)
	}
}

// read pulls inputs until they end or the stream stops.
func (s *stream) read(inputs iter.Seq[[]byte]) {
	defer close(s.in)
	if !s.slot() {
		return
	}
	for in := range inputs {
		s.in <- in
		if !s.slot() {
			return
		}
	}
}

// slot waits for room in the window, or reports that the stream stopped.
func (s *stream) slot() bool {
	select {
	case <-s.slots:
		return true
	case <-s.quit:
		return false
	}
}

// run submits and yields until every input has its result yielded, the
// caller stops, or the run is aborted.
func (s *stream) run(yield func(Result, error) bool) {
	for {
		s.submit(nil, false, false)
		if s.exhausted && s.yielded == s.submitted {
			// The last result is in; the run ends at once. A task that
			// aborted the run with it leaves the error to report.
			<-s.r.done
			if s.r.err != nil {
				yield(Result{}, s.r.err)
			}
			return
		}
		select {
		case in, ok := <-s.in:
			s.submit(in, ok, !ok)
		case res := <-s.out:
			if !s.take(res, yield) {
				return
			}
		case <-s.r.done:
			// Every result accepted before the end is in out by now
			// (run.deliverOrAbort sends under the lock that end takes). A
			// run that ended normally goes round the loop to yield them;
			// an aborted one yields them here, then its error.
			if s.r.err != nil {
				s.yieldAborted(yield)
				return
			}
		}
	}
}

// submit queues first (when got; ended says the inputs are over instead)
// and every input the reader has ready, and seals the run once the inputs
// are over.
func (s *stream) submit(first []byte, got, ended bool) {
	var batch []*job
	add := func(in []byte) {
		batch = append(batch, &job{run: s.r, index: s.submitted, input: in, memLimit: s.r.memLimit})
		s.submitted++
	}
	if ended {
		s.exhausted = true
	} else if got || len(s.in) > 0 {
		if got {
			add(first)
		}
	drain:
		for {
			select {
			case in, ok := <-s.in:
				if !ok {
					s.exhausted = true
					break drain
				}
				add(in)
			default:
				break drain
			}
		}
	}
	if len(batch) > 0 {
		s.r.add(len(batch))
		s.p.q.push(batch...)
	}
	if s.exhausted {
		s.r.seal()
	}
}

// take yields res at once, or, ordered, holds it until its turn and yields
// every result whose turn has come. Each yield frees a slot of the window.
// It reports whether to go on.
func (s *stream) take(res Result, yield func(Result, error) bool) bool {
	if !s.ordered {
		return s.yield(res, yield)
	}
	s.pending[res.Index] = res
	for {
		res, ok := s.pending[s.yielded]
		if !ok {
			return true
		}
		delete(s.pending, s.yielded)
		if !s.yield(res, yield) {
			return false
		}
	}
}

func (s *stream) yield(res Result, yield func(Result, error) bool) bool {
	s.yielded++
	s.slots <- struct{}{} // never blocks: a slot was taken for this input
	return yield(res, nil)
}

// yieldAborted yields every result that finished before the abort, in
// input order when ordered (those that did not finish are skipped), then
// the abort's error.
func (s *stream) yieldAborted(yield func(Result, error) bool) {
	for len(s.out) > 0 {
		res := <-s.out
		if !s.ordered {
			if !yield(res, nil) {
				return
			}
			continue
		}
		s.pending[res.Index] = res
	}
	for _, i := range slices.Sorted(maps.Keys(s.pending)) {
		if !yield(s.pending[i], nil) {
			return
		}
	}
	yield(Result{}, s.r.err)
}
