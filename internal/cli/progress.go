package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// progress redraws one line on stderr while a run goes on, such as
//
//	safepool: 1200/5000 (24%): ok 1190, error 8, killed 2, 412/s, eta 9s
//
// and prints a summary line when it ends. The input is read as the run
// goes, so the total is known only when the input is a regular file: its
// lines are counted on the side (a sequential read the page cache mostly
// serves) and the total appears when the count is done. Without it, the
// line shows the counts and the rate. A nil *progress draws nothing.
type progress struct {
	w      io.Writer
	c      *counts
	base   int          // records kept from an earlier run (--resume)
	total  atomic.Int64 // lines in the input that are tasks; 0 while unknown
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	width  int        // of the line last drawn, to blank it
	window []rateMark // recent counts, for the rate
}

// rateMark is the count of records at a moment.
type rateMark struct {
	at   time.Time
	done int64
}

// tick is how often the line is redrawn; rateSpan is how far back the
// rate looks.
const (
	tick     = 200 * time.Millisecond
	rateSpan = 5 * time.Second
)

// startProgress starts the line when mode asks for it: always, or auto
// when stderr is a terminal. input is the input when it is a file.
func startProgress(mode progressMode, stderr io.Writer, c *counts, base int, input *os.File) *progress {
	switch mode {
	case progressNever:
		return nil
	case progressAuto:
		f, ok := stderr.(*os.File)
		if !ok || !isTerminal(f) {
			return nil
		}
	}
	pr := &progress{w: stderr, c: c, base: base, stop: make(chan struct{}), done: make(chan struct{})}
	if input != nil {
		if fi, err := input.Stat(); err == nil && fi.Mode().IsRegular() {
			if off, err := input.Seek(0, io.SeekCurrent); err == nil {
				go pr.count(input, off)
			}
		}
	}
	go pr.loop()
	return pr
}

// count counts the input's tasks with ReadAt, which leaves the offset the
// run reads from alone, and gives up when the run ends first.
func (pr *progress) count(f *os.File, off int64) {
	buf := make([]byte, 1<<20)
	var lines, tasks int64 // lines so far; lines up to the last that is not blank
	for {
		select {
		case <-pr.stop:
			return
		default:
		}
		n, err := f.ReadAt(buf, off)
		chunk := buf[:n]
		if last := bytes.LastIndexFunc(chunk, func(r rune) bool { return !strings.ContainsRune(" \t\r\n", r) }); last >= 0 {
			tasks = lines + int64(bytes.Count(chunk[:last], []byte("\n"))) + 1
		}
		lines += int64(bytes.Count(chunk, []byte("\n")))
		off += int64(n)
		if err != nil {
			if err == io.EOF {
				pr.total.Store(tasks)
			}
			return
		}
	}
}

func (pr *progress) loop() {
	defer close(pr.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-pr.stop:
			return
		case now := <-t.C:
			pr.draw(pr.line(now))
		}
	}
}

// line is the progress line at now.
func (pr *progress) line(now time.Time) string {
	done := pr.c.done.Load()
	pr.window = append(pr.window, rateMark{now, done})
	for len(pr.window) > 2 && now.Sub(pr.window[0].at) > rateSpan {
		pr.window = pr.window[1:]
	}
	var rate float64
	if first := pr.window[0]; now.After(first.at) {
		rate = float64(done-first.done) / now.Sub(first.at).Seconds()
	}
	all := int64(pr.base) + done
	var b strings.Builder
	total := pr.total.Load()
	if total > 0 && all <= total {
		fmt.Fprintf(&b, "safepool: %d/%d (%d%%)", all, total, all*100/total)
	} else {
		fmt.Fprintf(&b, "safepool: %d done", all)
	}
	fmt.Fprintf(&b, ": ok %d, error %d, killed %d, %.0f/s", pr.c.ok.Load(), pr.c.failed.Load(), pr.c.killed.Load(), rate)
	if total > 0 && all <= total && rate > 0 {
		eta := time.Duration(float64(total-all) / rate * float64(time.Second))
		fmt.Fprintf(&b, ", eta %s", eta.Round(time.Second))
	}
	return b.String()
}

// draw writes s over the line last drawn.
func (pr *progress) draw(s string) {
	fmt.Fprintf(pr.w, "\r%s%s", s, strings.Repeat(" ", max(pr.width-len(s), 0)))
	pr.width = max(pr.width, len(s))
}

// end is how a run ended, for the summary.
type end struct {
	aborted bool
	elapsed time.Duration
	total   int // the input's tasks, when known; 0 otherwise
}

// finish stops the line, blanks it and prints the summary.
func (pr *progress) finish(e end) {
	if pr == nil {
		return
	}
	pr.once.Do(func() { close(pr.stop) })
	<-pr.done
	if pr.width > 0 {
		fmt.Fprintf(pr.w, "\r%s\r", strings.Repeat(" ", pr.width))
	}
	if e.total == 0 {
		e.total = int(pr.total.Load())
	}
	fmt.Fprintln(pr.w, summary(pr.c, pr.base, e))
}

// summary is the last line of a run on stderr, such as
//
//	safepool: done 40/40: ok 38, error 1, killed 1, retried 2, elapsed 1.204s
//
// where killed counts every killed-task status (killed, memory_limit and
// timeout), error counts bad input lines too, and not_run, bad lines and
// resumed records are added when there are any.
func summary(c *counts, base int, e end) string {
	all := base + int(c.done.Load())
	var b strings.Builder
	verb := "done"
	if e.aborted {
		verb = "aborted after"
	}
	if !e.aborted {
		e.total = all // the whole input was read
	}
	fmt.Fprintf(&b, "safepool: %s %d", verb, all)
	if e.total >= all {
		fmt.Fprintf(&b, "/%d", e.total)
	}
	fmt.Fprintf(&b, ": ok %d, error %d, killed %d", c.ok.Load(), c.failed.Load(), c.killed.Load())
	if n := c.notRun.Load(); n > 0 {
		fmt.Fprintf(&b, ", not_run %d", n)
	}
	if n := c.bad.Load(); n > 0 {
		fmt.Fprintf(&b, ", bad lines %d", n)
	}
	fmt.Fprintf(&b, ", retried %d", c.retried.Load())
	if base > 0 {
		fmt.Fprintf(&b, ", resumed after %d", base)
	}
	fmt.Fprintf(&b, ", elapsed %s", e.elapsed.Round(time.Millisecond))
	return b.String()
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
