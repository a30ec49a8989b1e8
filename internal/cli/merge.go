package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/safepool/safepool/pool"
)

// slot is an input line whose record is not written yet.
type slot struct {
	index int    // the record's index: the line number less one
	input []byte // a task's input
	bad   string // why the line is not a task; "" for a task
	blank bool   // a blank line: a bad line only if more input follows
}

// merger writes the records of the input's lines in input order, one
// chunk of lines at a time, as the pipeline hands the chunks over in
// order (see pipeline). It runs on one goroutine.
//
// Blank lines are held until a line that is not blank follows them, which
// makes them bad lines; blank lines at the end of the input get no record.
// Once a chunk's map has ended with an error (an abort, an interrupt),
// the rest is held, and finish writes it: the output then runs up to the
// last task that has a result of its own, the tasks in between that did
// not finish written as not_run, with why, and nothing past it but the bad
// lines right behind it.
type merger struct {
	o   *runOptions
	enc *encoder
	w   *writer

	blanks  []int      // blank lines held: their indices
	aborted bool       // a map ended with an error: what follows is held
	tail    []tailSlot // the slots held after an abort
	// stop is the first result that stops the run under --on-kill abort
	// or --on-error abort.
	stop *stopTask
	// badLines are the first few bad lines written, and firstBad why the
	// first of them is bad, for the message at the end.
	badLines []int
	firstBad string
	recs     []record // the records of the chunk being written
}

// tailSlot is a slot held after an abort, with its task's result.
type tailSlot struct {
	slot
	task int         // the run's number of its task
	res  pool.Result // StatusNotRun (or zero) when the task did not finish
}

// stopTask is the task whose result stopped the run.
type stopTask struct {
	pool, line int // the run's number of the task and its line number
	input      []byte
	res        pool.Result
}

func newMerger(o *runOptions, enc *encoder, w *writer) *merger {
	return &merger{o: o, enc: enc, w: w}
}

// add writes the records of one chunk of lines. results are the chunk's
// map results, one per task slot in order; task0 is the run's number of
// its first task; whole, when not nil, is the record of all of them, made
// already (a chunk without bad lines). aborted says that the chunk's map
// ended with an error.
func (m *merger) add(slots []slot, task0 int, results []pool.Result, whole *record, aborted bool) {
	if aborted {
		m.aborted = true
	}
	if m.aborted {
		j := 0
		for _, s := range slots {
			t := tailSlot{slot: s}
			if s.bad == "" && !s.blank {
				t.task = task0 + j
				if j < len(results) { // none when the map did not start
					t.res = results[j]
				}
				j++
			}
			m.tail = append(m.tail, t)
		}
		return
	}
	if whole != nil {
		m.flushBlanks()
		for j, res := range results {
			if m.stop == nil && m.o.abortsOn(res.Status) {
				s := slots[j] // a chunk with no bad lines: slot j is task j
				m.stop = &stopTask{pool: task0 + j, line: s.index + 1, input: s.input, res: res}
			}
		}
		m.recs = append(m.recs, *whole)
		m.put()
		return
	}
	j := 0
	for _, s := range slots {
		if s.bad != "" || s.blank {
			m.line(s)
			continue
		}
		m.flushBlanks()
		res := results[j]
		if m.stop == nil && m.o.abortsOn(res.Status) {
			m.stop = &stopTask{pool: task0 + j, line: s.index + 1, input: s.input, res: res}
		}
		m.recs = append(m.recs, m.enc.task(s.index, s.input, res))
		j++
	}
	m.put()
}

// put hands the records made so far to the writer.
func (m *merger) put() {
	if len(m.recs) > 0 {
		m.w.put(m.recs)
		m.recs = nil
	}
}

// line takes a slot that is not a task: a blank line is held, a bad line
// is written after the blank lines held before it.
func (m *merger) line(s slot) {
	if s.blank {
		m.blanks = append(m.blanks, s.index)
		return
	}
	m.flushBlanks()
	m.badLine(s.index, s.bad)
}

// flushBlanks makes the blank lines held into bad lines: a line that is
// not blank follows them.
func (m *merger) flushBlanks() {
	for _, i := range m.blanks {
		m.badLine(i, fmt.Sprintf("line %d %v", i+1, errBlank))
	}
	m.blanks = m.blanks[:0]
}

func (m *merger) badLine(index int, why string) {
	if len(m.badLines) < maxNamed {
		m.badLines = append(m.badLines, index+1)
	}
	if m.firstBad == "" {
		m.firstBad = why
	}
	m.recs = append(m.recs, m.enc.badLine(index, why))
}

// maxNamed is how many bad lines the message at the end names.
const maxNamed = 5

func finished(res pool.Result) bool {
	return res.Status != 0 && res.Status != pool.StatusNotRun
}

// finish writes what an abort held, once the run has ended with err (see
// merger). It does nothing after a run that was not aborted.
func (m *merger) finish(err error, interrupted bool) {
	if err == nil || !m.aborted {
		return
	}
	// After a task's abort, nothing past that task: the maps of later
	// chunks ran on until the abort reached them.
	limit := int(^uint(0) >> 1)
	var te *pool.TaskError
	if errors.As(err, &te) {
		limit = te.Index
	}
	for i := range m.tail {
		if t := &m.tail[i]; t.bad == "" && !t.blank && t.task > limit {
			t.res = pool.Result{}
		}
	}
	last := -1
	for i, t := range m.tail {
		if t.bad != "" || t.blank || !finished(t.res) {
			continue
		}
		last = i
		if m.stop == nil && m.o.abortsOn(t.res.Status) {
			m.stop = &stopTask{pool: t.task, line: t.index + 1, input: t.input, res: t.res}
		}
	}
	why := m.notRunReason(err, interrupted)
	for i, t := range m.tail {
		switch {
		case t.bad != "" || t.blank:
			m.line(t.slot)
			continue
		case i > last:
			// Past the last result, only the bad lines right behind it.
			m.put()
			m.tail = nil
			return
		}
		m.flushBlanks()
		if finished(t.res) {
			m.recs = append(m.recs, m.enc.task(t.index, t.input, t.res))
		} else {
			m.recs = append(m.recs, m.enc.notRun(t.index, why))
		}
	}
	m.put()
	m.tail = nil
}

// close ends the merge and closes the output. It returns the writer's
// error.
func (m *merger) close() error { return m.w.close() }

// stopped returns the task whose result stopped the run, or nil.
func (m *merger) stopped() *stopTask { return m.stop }

// errWrite ends a run whose output could not be written.
var errWrite = errors.New("the output could not be written")

// notRunReason is the error of the not_run records of a run that ended
// with err.
func (m *merger) notRunReason(err error, interrupted bool) string {
	var te *pool.TaskError
	var se *pool.StartError
	switch {
	case errors.As(err, &te):
		if m.stop != nil && m.stop.pool == te.Index {
			return fmt.Sprintf("not run: the run was aborted by line %d (%s)", m.stop.line, te.Status)
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
