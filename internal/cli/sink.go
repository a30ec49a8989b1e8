package cli

import (
	"io"
	"os"
	"sync/atomic"

	"github.com/safepool/safepool/pool"
)

// lineFile buffers whole lines and writes them with one write call per
// batch, so that the file only ever grows by whole lines (see writer).
type lineFile struct {
	name string   // the path, or "stdout"
	f    *os.File // nil for stdout
	w    io.Writer
	buf  []byte
}

// flushAt is how many buffered bytes make the writer flush at once rather
// than when it runs out of records.
const flushAt = 64 << 10

func (l *lineFile) add(line []byte) { l.buf = append(l.buf, line...) }

// flush writes the buffered lines. os.File.Write goes on after a short
// write, so the lines are written whole unless the write fails.
func (l *lineFile) flush() error {
	if l == nil || len(l.buf) == 0 {
		return nil
	}
	_, err := l.w.Write(l.buf)
	if cap(l.buf) > 4*flushAt {
		l.buf = nil // one huge output must not pin its buffer for the rest of the run
	} else {
		l.buf = l.buf[:0]
	}
	if err != nil {
		return failedErrorf("write %s: %v", l.name, err)
	}
	return nil
}

func (l *lineFile) close() error {
	if l == nil || l.f == nil {
		return nil
	}
	if err := l.f.Close(); err != nil {
		return failedErrorf("write %s: %v", l.name, err)
	}
	return nil
}

// counts are the records written so far, by kind. The progress line reads
// them while the writer adds to them.
type counts struct {
	done, ok, failed, killed, notRun, bad, notUTF8, retried atomic.Int64
}

func (c *counts) add(r record) {
	t := r.tally
	if t == nil {
		t = new(tally)
		t.add(r.status, r.attempts, r.bad, r.notUTF8)
	}
	c.done.Add(t.done)
	c.ok.Add(t.ok)
	c.failed.Add(t.failed)
	c.killed.Add(t.killed)
	c.notRun.Add(t.notRun)
	c.bad.Add(t.bad)
	c.notUTF8.Add(t.notUTF8)
	c.retried.Add(t.retried)
}

// tally counts the slots of a record of many, as counts does.
type tally struct {
	done, ok, failed, killed, notRun, bad, notUTF8, retried int64
}

func (t *tally) add(status pool.Status, attempts int, bad, notUTF8 bool) {
	t.done++
	switch {
	case status == pool.StatusOK:
		t.ok++
	case status == pool.StatusError:
		t.failed++
	case status.IsKilledTask():
		t.killed++
	case status == pool.StatusNotRun:
		t.notRun++
	}
	t.retried += int64(max(attempts-1, 0))
	if bad {
		t.bad++
	}
	if notUTF8 {
		t.notUTF8++
	}
}

// writer writes records to --out, --stats and --killed on a goroutine of
// its own, as the run hands them over in input order.
//
// It flushes whenever it has no record waiting, before it blocks for the
// next one, and whenever 64 KiB are buffered: a record is on its way to
// the file as soon as it is next in order, yet a fast run writes many
// lines per write call. A write is always of whole lines. So when the CLI
// is killed (kill -9, the OOM killer), every file holds whole lines in
// input order, except that the kernel may stop a write under way part
// through (Linux checks for a fatal signal between pages), which leaves
// one partial last line without its newline; --resume removes it.
//
// --stats and --killed are flushed before --out, so that they never lag
// behind it: --resume trims them back to what --out holds.
type writer struct {
	in                 chan []record
	out, stats, killed *lineFile
	counts             counts
	onErr              func() // stops the run when a write fails
	err                error
	done               chan struct{}
}

func newWriter(out, stats, killed *lineFile, onErr func()) *writer {
	w := &writer{in: make(chan []record, 64), out: out, stats: stats, killed: killed, onErr: onErr, done: make(chan struct{})}
	go w.loop()
	return w
}

// put hands records over, in order; it blocks while the writer is 64
// batches behind. The writer owns rs from then on.
func (w *writer) put(rs []record) { w.in <- rs }

func (w *writer) loop() {
	defer close(w.done)
	for {
		var rs []record
		var ok bool
		select {
		case rs, ok = <-w.in:
		default:
			w.flush() // nothing is waiting: write what is buffered before blocking
			rs, ok = <-w.in
		}
		if !ok {
			w.flush()
			return
		}
		for _, r := range rs {
			if w.err != nil {
				break // drain, so that the run is never blocked on a dead writer
			}
			w.out.add(r.out)
			if w.stats != nil && r.stats != nil {
				w.stats.add(r.stats)
			}
			if w.killed != nil && r.killed != nil {
				w.killed.add(r.killed)
			}
			w.counts.add(r)
			if len(w.out.buf) >= flushAt || (w.stats != nil && len(w.stats.buf) >= flushAt) || (w.killed != nil && len(w.killed.buf) >= flushAt) {
				w.flush()
			}
		}
	}
}

// flush writes every buffer, --out last.
func (w *writer) flush() {
	if w.err != nil {
		return
	}
	for _, f := range []*lineFile{w.stats, w.killed, w.out} {
		if err := f.flush(); err != nil {
			w.err = err
			w.onErr()
			return
		}
	}
}

// close waits for the last records to be written and closes the files. It
// returns the first error.
func (w *writer) close() error {
	close(w.in)
	<-w.done
	err := w.err
	for _, f := range []*lineFile{w.stats, w.killed, w.out} {
		if cerr := f.close(); err == nil {
			err = cerr
		}
	}
	return err
}

// openOutputs opens --out (stdout without it), --stats and --killed; the
// last two are nil unless asked for. A new run creates them empty. A run
// with --resume cuts each back to the records of the slots at keeps, then
// appends to it.
func openOutputs(o *runOptions, stdout io.Writer, at *resumePoint) (out, stats, killed *lineFile, err error) {
	open := func(path, flag string, decode func([]byte) (int, error)) (*lineFile, error) {
		if !o.resume {
			return createFile(path, flag)
		}
		size := at.size
		if decode != nil {
			if size, err = trimSideFile(path, flag, at.records, decode); err != nil {
				return nil, err
			}
		}
		return appendFile(path, flag, size)
	}
	if o.out == "" {
		out = &lineFile{name: "stdout", w: stdout}
	} else if out, err = open(o.out, "--out", nil); err != nil {
		return nil, nil, nil, err
	}
	if o.stats != "" {
		if stats, err = open(o.stats, "--stats", statsIndex); err != nil {
			out.close()
			return nil, nil, nil, err
		}
	}
	if o.killed != "" {
		if killed, err = open(o.killed, "--killed", killedIndex); err != nil {
			out.close()
			stats.close()
			return nil, nil, nil, err
		}
	}
	return out, stats, killed, nil
}

// createFile creates path, empty, so that a path that cannot be written
// fails before any task runs.
func createFile(path, flag string) (*lineFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, usageErrorf("%s: %v; pass a path in a directory you can write to", flag, err)
	}
	return &lineFile{name: path, f: f, w: f}, nil
}

// appendFile opens path to append to, after cutting it to size bytes.
func appendFile(path, flag string, size int64) (*lineFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o666)
	if err != nil {
		return nil, usageErrorf("%s: %v; pass a path in a directory you can write to", flag, err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, usageErrorf("%s: %v; --resume must be able to cut off what the run it resumes left unfinished", flag, err)
	}
	return &lineFile{name: path, f: f, w: f}, nil
}
