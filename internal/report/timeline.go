package report

import (
	"bufio"
	"fmt"
	"html"
	"math"
	"strings"
	"time"
)

// Timeline geometry, in pixels.
const (
	leftMargin = 170
	topMargin  = 28
	laneHeight = 18
	laneGap    = 6
	minBar     = 2 // narrower attempts go into cells
)

// timeline is the second pass's state: the scale, the cells that
// aggregate short attempts, and the marks drawn on top.
type timeline struct {
	s      *summary
	lanes  []lane
	scale  float64 // pixels per nanosecond
	cells  [][]uint8
	wide   int
	kills  []mark
	links  []link
	extraK int // kill marks not drawn
	extraL int // retry links not drawn
}

type mark struct{ x, y float64 }
type link struct{ x0, y0, x1, y1 float64 }

func (t *timeline) x(at time.Time) float64 {
	return leftMargin + float64(at.Sub(t.s.t0).Nanoseconds())*t.scale
}

func (t *timeline) y(lane int) float64 { return topMargin + float64(lane*(laneHeight+laneGap)) }

func (t *timeline) laneOf(a attempt) int {
	if w := t.s.workers[workerKey{a.agent, a.pid}]; w != nil {
		return w.lane
	}
	return len(t.lanes) - 1 // beyond maxWorkers
}

// writeTimeline draws the lanes, streaming the stats file a second time:
// each attempt wide enough to see is written as a bar at once; shorter
// ones raise their cell's severity.
func writeTimeline(w *bufio.Writer, path string, s *summary, lanes []lane) error {
	w.WriteString("<h2>Timeline</h2>\n")
	writeLegend(w)
	if len(lanes) == 0 {
		w.WriteString("<p class=\"note\">No attempt ran.</p>\n")
		return nil
	}
	span := max(s.t1.Sub(s.t0), time.Nanosecond)
	t := &timeline{s: s, lanes: lanes, scale: plotWidth / float64(span.Nanoseconds())}
	t.cells = make([][]uint8, len(lanes))
	for i := range t.cells {
		t.cells[i] = make([]uint8, plotWidth+1)
	}
	height := t.y(len(lanes)) + 24
	fmt.Fprintf(w, `<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="%d" height="%.0f" role="img" aria-label="timeline">`+"\n",
		leftMargin+plotWidth+20, height)
	t.axis(w, span, height)
	t.laneLabels(w)
	w.WriteString(`<g class="bars">` + "\n")
	_, err := forEach(path, func(r *Record) {
		var prev *attempt
		r.attempts(func(a attempt) {
			t.draw(w, a)
			if prev != nil {
				t.link(*prev, a)
			}
			p := a
			prev = &p
		})
	})
	if err != nil {
		return fmt.Errorf("report: read %s: %w", path, err)
	}
	w.WriteString("</g>\n")
	t.drawCells(w)
	t.drawMarks(w)
	w.WriteString("</svg>\n")
	var notes []string
	if t.extraK > 0 {
		notes = append(notes, fmt.Sprintf("%d more kills not marked", t.extraK))
	}
	if t.extraL > 0 {
		notes = append(notes, fmt.Sprintf("%d more retries not linked", t.extraL))
	}
	if s.overflow {
		notes = append(notes, fmt.Sprintf("more than %d worker processes: the rest share the last lane", maxWorkers))
	}
	fmt.Fprintf(w, "<p class=\"note\">Each bar is one attempt, from its start to its end on the worker that ran it. Attempts shorter than %d px are drawn as cells coloured by the worst status among them. %s</p>\n",
		minBar, html.EscapeString(strings.Join(notes, "; ")))
	return nil
}

func writeLegend(w *bufio.Writer) {
	w.WriteString(`<p class="legend">`)
	for _, st := range statusList[:5] {
		fmt.Fprintf(w, "<span>%s%s</span>", swatch(st), st)
	}
	w.WriteString(`<span>&#x2715; worker killed</span><span>&#x25B2; worker restarted</span><span>&#x2197; retry (dashed: from the failed attempt to the next)</span></p>` + "\n")
}

// axis draws time ticks at a round step.
func (t *timeline) axis(w *bufio.Writer, span time.Duration, height float64) {
	step := niceStep(span / 8)
	for at := time.Duration(0); at <= span; at += step {
		x := leftMargin + float64(at.Nanoseconds())*t.scale
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.0f" stroke="#eee"/><text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n",
			x, topMargin-4, x, height-20, x, topMargin-10, fmtDur(at))
	}
}

// niceStep rounds d up to 1, 2 or 5 times a power of ten.
func niceStep(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Nanosecond
	}
	p := math.Pow(10, math.Floor(math.Log10(float64(d))))
	for _, m := range []float64{1, 2, 5, 10} {
		if float64(d) <= m*p {
			return time.Duration(m * p)
		}
	}
	return time.Duration(10 * p)
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%gµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%gms", float64(d)/1e6)
	}
	return fmt.Sprintf("%gs", d.Seconds())
}

// laneLabels names each lane and marks each worker that replaced another.
func (t *timeline) laneLabels(w *bufio.Writer) {
	for i, l := range t.lanes {
		y := t.y(i)
		name := fmt.Sprintf("worker %d", i+1)
		if t.s.agents {
			name = l.agent + " · " + name
		}
		fmt.Fprintf(w, `<rect x="%d" y="%.0f" width="%d" height="%d" fill="#f6f6f6"/><text x="4" y="%.0f">%s</text>`+"\n",
			leftMargin, y, plotWidth, laneHeight, y+13, html.EscapeString(trim(name, 26)))
		for j := 1; j < len(l.pids) && j <= maxMarks; j++ {
			x := t.x(l.first[j])
			fmt.Fprintf(w, `<path class="restart" d="M%.1f %.0f l-4 6 h8 z" fill="#1e88e5"><title>worker restarted: pid %d replaced pid %d</title></path>`+"\n",
				x, y+laneHeight, l.pids[j], l.pids[j-1])
		}
	}
}

func trim(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// draw writes a's bar, or raises its cells.
func (t *timeline) draw(w *bufio.Writer, a attempt) {
	lane := t.laneOf(a)
	x0, x1 := t.x(a.start), t.x(a.end)
	y := t.y(lane)
	if isKill(a.status) {
		if len(t.kills) < maxMarks {
			t.kills = append(t.kills, mark{x1, y})
		} else {
			t.extraK++
		}
	}
	if x1-x0 >= minBar && t.wide < maxWideBars {
		t.wide++
		fmt.Fprintf(w, `<rect x="%.1f" y="%.0f" width="%.1f" height="%d" fill="%s"><title>task %d, attempt %d: %s, %s, pid %d</title></rect>`+"\n",
			x0, y+2, x1-x0, laneHeight-4, colour(a.status), a.index, a.n, html.EscapeString(a.status),
			a.end.Sub(a.start).Round(time.Microsecond), a.pid)
		return
	}
	sev := uint8(severityOf(a.status) + 1)
	c0 := min(max(int(x0-leftMargin), 0), plotWidth)
	c1 := min(max(int(x1-leftMargin), c0), plotWidth)
	for c := c0; c <= c1; c++ {
		if t.cells[lane][c] < sev {
			t.cells[lane][c] = sev
		}
	}
}

func severityOf(status string) int {
	for i, s := range severity {
		if s == status {
			return i
		}
	}
	return 1 // an unknown status shows like an error
}

// link joins a failed attempt to the retry after it.
func (t *timeline) link(prev, next attempt) {
	if len(t.links) >= maxMarks {
		t.extraL++
		return
	}
	y0 := t.y(t.laneOf(prev)) + laneHeight/2
	y1 := t.y(t.laneOf(next)) + laneHeight/2
	t.links = append(t.links, link{t.x(prev.end), y0, t.x(next.start), y1})
}

// drawCells draws each lane's cells, a run of same-coloured pixels as one
// rectangle.
func (t *timeline) drawCells(w *bufio.Writer) {
	w.WriteString(`<g class="cells">` + "\n")
	for lane, row := range t.cells {
		y := t.y(lane)
		for c := 0; c < len(row); {
			v := row[c]
			e := c + 1
			for e < len(row) && row[e] == v {
				e++
			}
			if v > 0 {
				fmt.Fprintf(w, `<rect x="%d" y="%.0f" width="%d" height="%d" fill="%s"/>`+"\n",
					leftMargin+c, y+2, e-c, laneHeight-4, colour(severity[v-1]))
			}
			c = e
		}
	}
	w.WriteString("</g>\n")
}

func (t *timeline) drawMarks(w *bufio.Writer) {
	w.WriteString(`<g class="retries" fill="none" stroke="#1e88e5" stroke-width="1.5" stroke-dasharray="4 2">` + "\n")
	for _, l := range t.links {
		mid := (l.x0 + l.x1) / 2
		fmt.Fprintf(w, `<path class="retry" d="M%.1f %.1f C%.1f %.1f %.1f %.1f %.1f %.1f"/>`+"\n",
			l.x0, l.y0, mid, l.y0-14, mid, l.y1-14, l.x1, l.y1)
	}
	w.WriteString("</g>\n<g class=\"kills\" stroke=\"#b71c1c\" stroke-width=\"2\">\n")
	for _, k := range t.kills {
		fmt.Fprintf(w, `<path class="kill" d="M%.1f %.0f l8 8 m0 -8 l-8 8"/>`+"\n", k.x-4, k.y-6)
	}
	w.WriteString("</g>\n")
}

// writeHistogram draws the attempts' durations, four buckets a decade.
func writeHistogram(w *bufio.Writer, s *summary) {
	w.WriteString("<h2>Attempt durations</h2>\n")
	lo, hi := -1, -1
	most := 0
	for i, n := range s.hist {
		if n > 0 {
			if lo < 0 {
				lo = i
			}
			hi = i
			most = max(most, n)
		}
	}
	if lo < 0 {
		w.WriteString("<p class=\"note\">No attempt ran.</p>\n")
		return
	}
	const barW, h, left = 28, 160, 50
	n := hi - lo + 1
	fmt.Fprintf(w, `<svg id="histogram" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" aria-label="histogram of attempt durations">`+"\n", left+n*barW+20, h+50)
	fmt.Fprintf(w, `<text x="%d" y="12" text-anchor="end">%d</text><line x1="%d" y1="10" x2="%d" y2="%d" stroke="#ccc"/>`+"\n", left-6, most, left-2, left-2, h+10)
	for i := lo; i <= hi; i++ {
		x := left + (i-lo)*barW
		bh := float64(s.hist[i]) / float64(most) * h
		fmt.Fprintf(w, `<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="#5c6bc0"><title>%s to %s: %d attempts</title></rect>`+"\n",
			x+2, float64(h+10)-bh, barW-4, bh, fmtSec(bucketLow(i)), fmtSec(bucketLow(i+1)), s.hist[i])
		if (i-lo)%2 == 0 {
			fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x+barW/2, h+26, fmtSec(bucketLow(i)))
		}
	}
	w.WriteString("</svg>\n")
}

func fmtSec(sec float64) string {
	return fmtDur(time.Duration(sec * 1e9).Round(time.Duration(math.Max(1, math.Pow(10, math.Floor(math.Log10(sec*1e9))-1)))))
}

// writeKilled lists the killed tasks: from the --killed file, with their
// reasons, or else their indices from the stats file.
func writeKilled(w *bufio.Writer, s *summary, rows []killedRow, n int) {
	w.WriteString("<h2>Killed tasks</h2>\n")
	switch {
	case n > 0:
		w.WriteString("<table id=\"killed\">\n<tr><th>index</th><th>status</th><th>attempts</th><th>input</th><th>reason</th></tr>\n")
		for _, k := range rows {
			fmt.Fprintf(w, "<tr><td class=\"num\">%d</td><td>%s%s</td><td class=\"num\">%d</td><td class=\"reason\">%s</td><td class=\"reason\">%s</td></tr>\n",
				k.Index, swatch(k.Status), html.EscapeString(k.Status), k.Attempts, html.EscapeString(trim(string(k.Input), 60)), html.EscapeString(trim(k.Reason, 300)))
		}
		w.WriteString("</table>\n")
		if n > len(rows) {
			fmt.Fprintf(w, "<p class=\"note\">and %d more in the --killed file</p>\n", n-len(rows))
		}
	case len(s.killedIdx) > 0:
		w.WriteString("<table id=\"killed\">\n<tr><th>index</th><th>status</th></tr>\n")
		for _, i := range s.killedIdx {
			fmt.Fprintf(w, "<tr><td class=\"num\">%d</td><td>killed task (pass --killed for the reason)</td></tr>\n", i)
		}
		w.WriteString("</table>\n")
	default:
		w.WriteString("<p class=\"note\">None.</p>\n")
	}
}
