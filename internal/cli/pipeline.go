package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/safepool/safepool/pool"
)

// pipeline runs the input through the pool a chunk of lines at a time,
// so that the work of each line off the pool's own path is done in bulk
// and in parallel:
//
//	reader → parsers (in parallel) → dispatcher (one map per chunk) →
//	a watcher per chunk (formats its records) → collector (merger, in
//	input order) → writer
//
// The reader cuts the input into chunks of whole lines: as many as are
// already read, up to a size that adapts to how long chunks take, so a
// slow input or slow tasks give small chunks and records are written as
// they finish, while fast tasks give chunks of thousands of lines. A few
// chunks are mapped at once, so the workers never wait for the next. A
// map that ends with an error (an abort, an interrupt, a write error)
// cancels the others: the run's context carries the first such error.
type pipeline struct {
	o    *runOptions
	p    *pool.Pool
	fn   string
	src  *source
	m    *merger
	ctx  context.Context // the run's: cancelled with the first error
	stop context.CancelCauseFunc

	size    atomic.Int64 // the most lines the reader puts in a chunk
	cut     atomic.Bool  // the run stopped before the end of the input
	toParse chan *chunk
	chunks  chan *chunk // in input order, to the dispatcher
	mapped  chan *chunk // in input order, to the collector
	quit    chan struct{}
}

// chunk is a run of whole input lines.
type chunk struct {
	first  int    // the index of its first line
	buf    []byte // its lines, back to back
	ends   []int  // where each line ends in buf
	slots  []slot
	inputs [][]byte
	parsed chan struct{} // closed once slots and inputs are set

	task0  int // the run's number of its first task
	h      *pool.MapHandle
	err    error // why its map did not start or was aborted
	start  time.Time
	done   chan struct{} // closed once results, recs and err are set
	res    []pool.Result
	whole  *record // the records of its tasks, when it has no bad lines
	finish time.Time
}

const (
	// chunkLines bounds the size of a chunk; minChunk is its smallest
	// bound, times the workers.
	chunkLines = 4096
	chunkBytes = 1 << 20
	// inFlight is how many chunks are mapped at once, at most.
	inFlight = 4
	// A chunk whose map took less than fastChunk makes the next chunks
	// twice as large; one that took more than slowChunk halves them.
	fastChunk = 20 * time.Millisecond
	slowChunk = 200 * time.Millisecond
)

// abortedBy is the cause a map's abort gives the others: they end with
// it, and the run with err.
type abortedBy struct {
	err   error
	task0 int // the run's number of the first task of the map it ended
}

func (a *abortedBy) Error() string { return a.err.Error() }

func newPipeline(ctx context.Context, stop context.CancelCauseFunc, o *runOptions, p *pool.Pool, fn string, src *source, m *merger) *pipeline {
	pl := &pipeline{o: o, p: p, fn: fn, src: src, m: m, ctx: ctx, stop: stop,
		toParse: make(chan *chunk, inFlight+2), chunks: make(chan *chunk, 2), mapped: make(chan *chunk, inFlight-2),
		quit: make(chan struct{})}
	pl.size.Store(int64(pl.minSize()))
	return pl
}

func (pl *pipeline) minSize() int {
	w := pl.o.workers
	if w <= 0 {
		w = runtime.NumCPU()
	}
	return max(2*w, 2)
}

// run runs the pipeline to the end of the input, or until a map ends with
// an error, and returns that error (nil when every map completed).
func (pl *pipeline) run() error {
	parsers := max(runtime.GOMAXPROCS(0), 1)
	var wg sync.WaitGroup
	for range parsers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pl.parse()
		}()
	}
	go pl.read()
	if pl.o.logLevel.set {
		go pl.stream()
	} else {
		go pl.dispatch()
	}
	defer wg.Wait()
	defer close(pl.quit)

	aborted := false
	for c := range pl.mapped {
		<-c.done
		if c.err != nil && !aborted {
			aborted = true
			pl.stop(&abortedBy{err: c.err, task0: c.task0})
		}
		pl.m.add(c.slots, c.task0, c.res, c.whole, aborted)
		if !aborted && len(c.inputs) > 0 {
			pl.adapt(c)
		}
	}
	if !aborted && !pl.cut.Load() {
		return nil
	}
	return pl.cause()
}

// cause is the error that ended the run: the first map's error, with a
// task's number made the run's.
func (pl *pipeline) cause() error {
	err := context.Cause(pl.ctx)
	var a *abortedBy
	if !errors.As(err, &a) {
		return err
	}
	var te *pool.TaskError
	if errors.As(a.err, &te) {
		c := *te
		c.Index += a.task0
		return &c
	}
	return a.err
}

// adapt sizes the next chunks by how long c's map took.
func (pl *pipeline) adapt(c *chunk) {
	d, n := c.finish.Sub(c.start), int64(len(c.ends))
	size := pl.size.Load()
	switch {
	case d < fastChunk && n >= size/2:
		pl.size.Store(min(2*size, chunkLines))
	case d > slowChunk:
		pl.size.Store(max(size/2, int64(pl.minSize())))
	}
}

// read cuts the input into chunks, and hands each to the parsers and, in
// order, to the dispatcher.
func (pl *pipeline) read() {
	defer close(pl.chunks)
	defer close(pl.toParse)
	if !pl.src.passOver() {
		return
	}
	line := pl.src.skip
	for {
		c := &chunk{first: line, parsed: make(chan struct{}), done: make(chan struct{})}
		err := pl.readChunk(c, int(pl.size.Load()))
		if len(c.ends) > 0 {
			line += len(c.ends)
			select {
			case pl.toParse <- c:
			case <-pl.quit:
				return
			}
			select {
			case pl.chunks <- c:
			case <-pl.quit:
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				pl.src.failed(nil, err)
			}
			return
		}
	}
}

// readChunk reads at least one line into c, then the lines already read,
// up to size lines.
func (pl *pipeline) readChunk(c *chunk, size int) error {
	r := pl.src.r
	for len(c.ends) < size && len(c.buf) < chunkBytes {
		if len(c.ends) > 0 {
			n := r.Buffered()
			b, _ := r.Peek(n)
			if bytes.IndexByte(b, '\n') < 0 {
				return nil // the next line is not read yet: do not wait for it
			}
		}
		start := len(c.buf)
		for {
			b, err := r.ReadSlice('\n')
			c.buf = append(c.buf, b...)
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				if len(c.buf) > start {
					c.ends = append(c.ends, len(c.buf))
				}
				return err
			}
			break
		}
		c.ends = append(c.ends, len(c.buf))
	}
	return nil
}

// parse parses chunks until the input ends or the run is over (the reader
// may be blocked on an input that never ends).
func (pl *pipeline) parse() {
	for {
		var c *chunk
		select {
		case c = <-pl.toParse:
		case <-pl.quit:
			return
		}
		if c == nil {
			return // the input ended
		}
		c.slots = make([]slot, len(c.ends))
		c.inputs = make([][]byte, 0, len(c.ends))
		from := 0
		for i, end := range c.ends {
			line := c.buf[from:end:end]
			from = end
			s := slot{index: c.first + i}
			in, err := parseLine(line, pl.o.encoding)
			switch {
			case err == errBlank:
				s.blank = true
			case err != nil:
				s.bad = "line " + strconv.Itoa(s.index+1) + " " + err.Error()
			default:
				s.input = in
				c.inputs = append(c.inputs, in)
			}
			c.slots[i] = s
		}
		close(c.parsed)
	}
}

// next returns the next chunk once it is parsed, or false at the end of
// the input or once the run has stopped: the chunks after that are not
// needed, and the input may never end (a pipe left open).
func (pl *pipeline) next() (*chunk, bool) {
	select {
	case c, ok := <-pl.chunks:
		if !ok {
			return nil, false
		}
		<-c.parsed
		return c, true
	case <-pl.ctx.Done():
		pl.cut.Store(true)
		return nil, false
	}
}

// dispatch maps the chunks in order, and hands them to the collector.
func (pl *pipeline) dispatch() {
	defer close(pl.mapped)
	tasks := 0
	for {
		c, ok := pl.next()
		if !ok {
			return
		}
		c.task0 = tasks
		tasks += len(c.inputs)
		c.start = time.Now()
		if len(c.inputs) == 0 {
			close(c.done)
		} else if c.h, c.err = pl.p.MapAsync(pl.ctx, pl.fn, c.inputs); c.err != nil {
			close(c.done)
		} else {
			go pl.watch(c)
		}
		select {
		case pl.mapped <- c:
		case <-pl.quit:
			if c.h != nil {
				c.h.Cancel()
			}
			return
		}
	}
}

// watch waits for c's map to end, then makes its records, or, when it was
// aborted, stops the other maps.
func (pl *pipeline) watch(c *chunk) {
	defer close(c.done)
	c.res, c.err = c.h.Wait(context.Background())
	c.finish = time.Now()
	if c.err != nil {
		pl.stop(&abortedBy{err: c.err, task0: c.task0})
		return
	}
	if len(c.inputs) < len(c.slots) {
		return // bad lines among the tasks: the merger makes the records
	}
	// The tasks' records, as one record of many: one buffer per file.
	enc := newEncoder(pl.o)
	rec := record{tally: new(tally), out: make([]byte, 0, 64*len(c.inputs))}
	if enc.stats {
		rec.stats = make([]byte, 0, 192*len(c.inputs))
	}
	j := 0
	for _, s := range c.slots {
		if s.bad != "" || s.blank {
			continue
		}
		enc.appendTask(&rec, s.index, s.input, c.res[j])
		j++
	}
	c.whole = &rec
}

// stream is dispatch for a run whose pool logs: its tasks go through one
// Imap, so that the index a log line names is the task's number in the
// run, not in its chunk. (Lines that are not tasks shift it from the line
// number, as before.)
func (pl *pipeline) stream() {
	defer close(pl.mapped)
	fed := make(chan *chunk, 1024) // chunks with tasks, in order, to the results
	inputs := func(yield func([]byte) bool) {
		defer close(fed)
		tasks := 0
		for {
			c, ok := pl.next()
			if !ok {
				return
			}
			c.task0 = tasks
			tasks += len(c.inputs)
			c.res = make([]pool.Result, len(c.inputs))
			c.start = time.Now()
			if len(c.inputs) == 0 {
				close(c.done)
			} else {
				fed <- c
			}
			select {
			case pl.mapped <- c:
			case <-pl.quit:
				return
			}
			for _, in := range c.inputs {
				if !yield(in) {
					return
				}
			}
		}
	}
	var cur *chunk
	got := 0
	for res, err := range pl.p.Imap(pl.ctx, pl.fn, inputs, 0) {
		if err != nil {
			// Every chunk not complete ends with err: the results it has
			// are those that finished. Stopping the run first stops the
			// inputs, which then close fed.
			pl.stop(&abortedBy{err: err})
			if cur == nil {
				cur = <-fed
			}
			for c := cur; c != nil; c = <-fed {
				c.err = err
				close(c.done)
			}
			return
		}
		for cur == nil || res.Index >= cur.task0+len(cur.inputs) {
			if cur != nil {
				close(cur.done) // after an abort Imap skips what did not finish
			}
			cur, got = <-fed, 0
		}
		cur.res[res.Index-cur.task0] = res
		if got++; got == len(cur.inputs) && res.Index == cur.task0+len(cur.inputs)-1 {
			cur.finish = time.Now()
			close(cur.done)
			cur = nil
		}
	}
	for c := cur; c != nil; c = <-fed {
		close(c.done) // cannot happen: Imap ended without an error before its results
	}
}
