package cli

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/safepool/safepool/pool"
)

// slot is an input line whose record is not written yet.
type slot struct {
	index int    // the record's index: the line number less one
	input []byte // a task's input
	bad   string // why the line is not a task; "" for a task
}

// merger puts the pool's results and the bad lines back in input order,
// and hands each record to the writer as soon as every slot before it has
// one.
//
// The pool numbers only the tasks it was given, in order; pending holds
// the slots not yet written, and the task at its head is the pool's task
// next. Its head is always a task's slot: a bad line behind nothing is
// written at once, and the bad lines behind a task are written as soon as
// that task's record is. So pending holds at most the pool's window of
// tasks, plus the bad lines read among them.
//
// The source adds slots from the goroutine on which the pool's Imap pulls
// the input, before it hands the input over, and results arrive on the
// goroutine that ranges over Imap: mu orders the two, so a result always
// finds its slot. Once the output is closed, slots are no longer taken.
type merger struct {
	mu      sync.Mutex
	closed  bool
	o       *runOptions
	enc     *encoder
	w       *writer
	pending []slot
	head    int // pending[head:] are the slots not yet written
	next    int // the pool's index of the task at the head
	// held are results after a gap, which only an abort leaves: Imap then
	// yields what finished, then its error, and finish writes them.
	held []pool.Result
	// stop is the first result that stops the run under --on-kill abort
	// or --on-error abort.
	stop *stopTask
	// badLines are the first few bad lines written, and firstBad why the
	// first of them is bad, for the message at the end.
	badLines []int
	firstBad string
}

// stopTask is the task whose result stopped the run.
type stopTask struct {
	pool, line int // the pool's index and the line number
	input      []byte
	res        pool.Result
}

func newMerger(o *runOptions, enc *encoder, w *writer) *merger {
	return &merger{o: o, enc: enc, w: w}
}

// task adds the slot of a line that holds a task, which the pool runs.
func (m *merger) task(index int, input []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.pending = append(m.pending, slot{index: index, input: input})
}

// bad adds the slot of a line that is not a task.
func (m *merger) bad(index int, why string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if m.head == len(m.pending) {
		m.writeBadLine(index, why)
		return
	}
	m.pending = append(m.pending, slot{index: index, bad: why})
}

// result takes one result from Imap.
func (m *merger) result(res pool.Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.held) > 0 || res.Index != m.next {
		m.held = append(m.held, res)
		return
	}
	m.write(res)
}

// write writes the record of the task at the head, whose result is res,
// and the bad lines behind it.
func (m *merger) write(res pool.Result) {
	s := m.pop()
	if m.stop == nil && m.o.abortsOn(res.Status) {
		m.stop = &stopTask{pool: m.next, line: s.index + 1, input: s.input, res: res}
	}
	m.next++
	m.w.put(m.enc.task(s.index, s.input, res))
	m.writeBad()
}

// writeBad writes the bad lines at the head.
func (m *merger) writeBad() {
	for m.head < len(m.pending) && m.pending[m.head].bad != "" {
		s := m.pop()
		m.writeBadLine(s.index, s.bad)
	}
}

func (m *merger) writeBadLine(index int, why string) {
	if len(m.badLines) < maxNamed {
		m.badLines = append(m.badLines, index+1)
	}
	if m.firstBad == "" {
		m.firstBad = why
	}
	m.w.put(m.enc.badLine(index, why))
}

// maxNamed is how many bad lines the message at the end names.
const maxNamed = 5

func (m *merger) pop() slot {
	s := m.pending[m.head]
	m.pending[m.head] = slot{} // drop the input
	m.head++
	switch {
	case m.head == len(m.pending):
		m.pending, m.head = m.pending[:0], 0
	case m.head >= 1024 && 2*m.head >= len(m.pending):
		n := copy(m.pending, m.pending[m.head:])
		clear(m.pending[n:])
		m.pending, m.head = m.pending[:n], 0
	}
	return s
}

// close ends the merge and closes the output; what the source adds later
// is dropped. It returns the writer's error.
func (m *merger) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return m.w.close()
}

// stopped returns the task whose result stopped the run, or nil.
func (m *merger) stopped() *stopTask {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stop
}

// finish ends the merge once Imap has ended with err. After an abort the
// output runs up to the last slot that has a record of its own: the
// tasks in between that did not finish are written as not_run, with why,
// and nothing is written past it.
func (m *merger) finish(err error, interrupted bool) {
	if err == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	why := m.notRunReason(err, interrupted)
	for _, res := range m.held {
		for m.next < res.Index && m.head < len(m.pending) {
			s := m.pop()
			m.next++
			m.w.put(m.enc.notRun(s.index, why))
			m.writeBad()
		}
		if m.head == len(m.pending) {
			break // cannot happen: every result has its slot
		}
		m.write(res)
	}
	m.held = nil
}

// lineOf returns the line number of the task the pool numbers i, when it
// is known.
func (m *merger) lineOf(i int) (int, bool) {
	if m.stop != nil && m.stop.pool == i {
		return m.stop.line, true
	}
	j := m.next
	for _, s := range m.pending[m.head:] {
		if s.bad != "" {
			continue
		}
		if j == i {
			return s.index + 1, true
		}
		j++
	}
	return 0, false
}

// errWrite ends a run whose output could not be written.
var errWrite = errors.New("the output could not be written")

// notRunReason is the error of the not_run records of a run that ended
// with err.
func (m *merger) notRunReason(err error, interrupted bool) string {
	var te *pool.TaskError
	var se *pool.StartError
	switch {
	case errors.As(err, &te):
		if line, ok := m.lineOf(te.Index); ok {
			return fmt.Sprintf("not run: the run was aborted by line %d (%s)", line, te.Status)
		}
		return fmt.Sprintf("not run: the run was aborted by a task that ended with %s", te.Status)
	case errors.As(err, &se):
		return "not run: workers could not be kept up (" + se.What + ")"
	case errors.Is(err, errWrite):
		return "not run: " + errWrite.Error()
	case interrupted, errors.Is(err, context.Canceled):
		return "not run: the run was interrupted"
	}
	return "not run: " + firstLine(err.Error())
}
