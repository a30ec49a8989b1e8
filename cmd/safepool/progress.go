package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/safepool/safepool/pool"
)

// progress draws a bar on stderr while a map runs and prints a summary line
// when it ends. A nil *progress draws nothing.
type progress struct {
	w    io.Writer
	m    *pool.MapResult
	bar  *progressbar.ProgressBar
	done chan struct{} // closed when the feeding goroutine has stopped
}

// tick is how often the bar reads the map's counters.
const tick = 100 * time.Millisecond

// startProgress starts the bar when mode asks for it: always, or auto when
// stderr is a terminal.
func startProgress(mode progressMode, stderr io.Writer, m *pool.MapResult) *progress {
	switch mode {
	case progressNever:
		return nil
	case progressAuto:
		f, ok := stderr.(*os.File)
		if !ok || !isTerminal(f) {
			return nil
		}
	}
	pr := &progress{w: stderr, m: m, done: make(chan struct{})}
	total := m.Progress().Total
	if total == 0 {
		close(pr.done) // nothing to draw; the summary still comes
		return pr
	}
	pr.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("running"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(tick),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
	)
	go pr.feed()
	return pr
}

// feed copies the map's counters into the bar until the map ends.
func (pr *progress) feed() {
	defer close(pr.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		pr.update()
		select {
		case <-pr.m.Done():
			return
		case <-t.C:
		}
	}
}

func (pr *progress) update() {
	c := pr.m.Progress()
	if c.Killed > 0 || c.Retried > 0 {
		pr.bar.Describe(fmt.Sprintf("running (killed %d, retried %d)", c.Killed, c.Retried))
	}
	_ = pr.bar.Set(c.Done)
}

// finish stops the bar and prints the summary: tasks done, how they ended,
// retries and the time the map took.
func (pr *progress) finish(results []pool.Result, elapsed time.Duration, aborted bool) {
	if pr == nil {
		return
	}
	<-pr.done
	if pr.bar != nil {
		if aborted {
			_ = pr.bar.Clear()
		} else {
			pr.update()
			_ = pr.bar.Finish() // clears the bar: OptionClearOnFinish
		}
		_ = pr.bar.Exit()
	}
	fmt.Fprintln(pr.w, summary(pr.m.Progress(), results, elapsed, aborted))
}

// summary is the last line of a run on stderr, such as
//
//	safepool: done 40/40: ok 38, error 1, killed 1, retried 2, elapsed 1.204s
//
// where killed counts every killed-task status (killed, memory_limit and
// timeout).
func summary(c pool.Progress, results []pool.Result, elapsed time.Duration, aborted bool) string {
	var ok, failed int
	for _, r := range results {
		switch r.Status {
		case pool.StatusOK:
			ok++
		case pool.StatusError:
			failed++
		}
	}
	verb := "done"
	if aborted {
		verb = "aborted after"
	}
	return fmt.Sprintf("safepool: %s %d/%d: ok %d, error %d, killed %d, retried %d, elapsed %s",
		verb, c.Done, c.Total, ok, failed, c.Killed, c.Retried, elapsed.Round(time.Millisecond))
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
