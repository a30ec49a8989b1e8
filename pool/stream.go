package pool

import (
	"context"
	"iter"
	"maps"
	"slices"
)

// stream is one Imap or ImapUnordered in flight: it feeds inputs to its run
// up to the window and yields results as they come back.
type stream struct {
	p       *Pool
	r       *run
	out     chan Result
	ordered bool
	window  int

	next               func() ([]byte, bool)
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
		s := &stream{p: p, out: make(chan Result, window), ordered: ordered, window: window, pending: map[int]Result{}}
		var err error
		if s.r, err = p.begin(ctx, fn, 0, s.out); err != nil {
			yield(Result{}, err)
			return
		}
		defer s.r.abort(context.Canceled) // a no-op when the run ended normally
		next, stop := iter.Pull(inputs)
		defer stop()
		s.next = next
		s.run(yield)
	}
}

// run alternates topping up and yielding until the inputs are done and
// every result is yielded, the caller stops, or the run is aborted.
func (s *stream) run(yield func(Result, error) bool) {
	for {
		s.topUp()
		if s.exhausted && s.yielded == s.submitted {
			return
		}
		select {
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

// topUp submits inputs until the window is full or the inputs end, when it
// seals the run.
func (s *stream) topUp() {
	var batch []*job
	for !s.exhausted && s.submitted-s.yielded < s.window {
		in, ok := s.next()
		if !ok {
			s.exhausted = true
			break
		}
		batch = append(batch, &job{run: s.r, index: s.submitted, input: in, memLimit: s.r.memLimit})
		s.submitted++
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
// every result whose turn has come. It reports whether to go on.
func (s *stream) take(res Result, yield func(Result, error) bool) bool {
	if !s.ordered {
		s.yielded++
		return yield(res, nil)
	}
	s.pending[res.Index] = res
	for {
		res, ok := s.pending[s.yielded]
		if !ok {
			return true
		}
		delete(s.pending, s.yielded)
		s.yielded++
		if !yield(res, nil) {
			return false
		}
	}
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
