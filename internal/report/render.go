package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"os"
	"slices"
	"time"
)

// Options say what to render.
type Options struct {
	// Stats is the path of the --stats file. Required.
	Stats string
	// Killed is the path of the --killed file, for the killed tasks'
	// reasons. Optional.
	Killed string
	// Title heads the page. Default "safepool run".
	Title string
}

// status colours, and the order in which a cell of many attempts takes
// the colour of its worst.
var (
	colours = map[string]string{
		"ok": "#43a047", "error": "#fb8c00", "killed": "#e53935", "memory_limit": "#8e24aa",
		"timeout": "#c0a000", "not_run": "#9e9e9e",
	}
	severity   = []string{"ok", "error", "memory_limit", "timeout", "killed"}
	statusList = []string{"ok", "error", "killed", "memory_limit", "timeout", "not_run"}
)

func colour(status string) string {
	if c, ok := colours[status]; ok {
		return c
	}
	return "#607d8b"
}

// Render writes the report of opt.Stats to w. It reads the stats file
// twice and holds no record per task.
//
// # Errors
//
// A stats or killed file that cannot be read, or a write to w that fails.
// Lines that are not stats records are counted in the summary, not fatal.
func Render(w io.Writer, opt Options) error {
	s, err := scanStats(opt.Stats)
	if err != nil {
		return err
	}
	killed, nKilled, err := readKilled(opt.Killed)
	if err != nil {
		return err
	}
	lanes := s.assignLanes()
	bw := bufio.NewWriterSize(w, 64<<10)
	title := opt.Title
	if title == "" {
		title = "safepool run"
	}
	writeHead(bw, title)
	writeSummary(bw, s, lanes, nKilled)
	if err := writeTimeline(bw, opt.Stats, s, lanes); err != nil {
		return err
	}
	writeHistogram(bw, s)
	writeKilled(bw, s, killed, nKilled)
	bw.WriteString("</body>\n</html>\n")
	return bw.Flush()
}

// killedRow is one line of a --killed file.
type killedRow struct {
	Index    int             `json:"index"`
	Input    json.RawMessage `json:"input"`
	Status   string          `json:"status"`
	Reason   string          `json:"reason"`
	Attempts int             `json:"attempts"`
}

// readKilled reads the first maxKilledRows killed tasks of path, and
// counts them all.
func readKilled(path string) ([]killedRow, int, error) {
	if path == "" {
		return nil, -1, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var rows []killedRow
	n := 0
	for sc.Scan() {
		var k killedRow
		if json.Unmarshal(sc.Bytes(), &k) != nil {
			continue
		}
		n++
		if len(rows) < maxKilledRows {
			rows = append(rows, k)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("report: read %s: %w", path, err)
	}
	return rows, n, nil
}

const style = `body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 12px}h2{font-size:16px;margin:24px 0 8px}
table{border-collapse:collapse}td,th{padding:2px 10px 2px 0;text-align:left;vertical-align:top}
.num{text-align:right;font-variant-numeric:tabular-nums}
.sw{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}
.legend span{margin-right:14px;white-space:nowrap}
svg text{font:11px system-ui,sans-serif;fill:#444}
.reason{font-family:ui-monospace,monospace;font-size:12px;max-width:720px;overflow-wrap:anywhere}
.note{color:#666;font-size:12px}`

func writeHead(w *bufio.Writer, title string) {
	fmt.Fprintf(w, `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>%s</title>
<style>%s</style>
</head>
<body>
<h1>%s</h1>
`, html.EscapeString(title), style, html.EscapeString(title))
}

func swatch(status string) string {
	return fmt.Sprintf(`<span class="sw" style="background:%s"></span>`, colour(status))
}

func writeSummary(w *bufio.Writer, s *summary, lanes []lane, nKilled int) {
	w.WriteString("<h2>Summary</h2>\n<table id=\"summary\">\n")
	row := func(k, v string) { fmt.Fprintf(w, "<tr><td>%s</td><td class=\"num\">%s</td></tr>\n", k, v) }
	row("tasks", fmt.Sprint(s.records))
	seen := map[string]bool{}
	for _, st := range statusList {
		seen[st] = true
		if n := s.byStatus[st]; n > 0 {
			row(swatch(st)+st, fmt.Sprint(n))
		}
	}
	var other []string
	for st := range s.byStatus {
		if !seen[st] {
			other = append(other, st)
		}
	}
	slices.Sort(other)
	for _, st := range other {
		row(swatch(st)+html.EscapeString(st), fmt.Sprint(s.byStatus[st]))
	}
	row("attempts", fmt.Sprint(s.attempts))
	row("tasks retried", fmt.Sprint(s.retried))
	row("attempts killed (killed, timeout, memory_limit)", fmt.Sprint(s.kills))
	if nKilled >= 0 {
		row("killed tasks (--killed)", fmt.Sprint(nKilled))
	}
	restarts := 0
	for _, l := range lanes {
		restarts += len(l.pids) - 1
	}
	row("worker processes", fmt.Sprint(len(s.workers)))
	row("lanes", fmt.Sprint(len(lanes)))
	row("workers that replaced another", fmt.Sprint(restarts))
	if !s.t0.IsZero() {
		row("span", s.t1.Sub(s.t0).Round(time.Microsecond).String())
		row("first start", s.t0.UTC().Format(time.RFC3339Nano))
	}
	if s.badLines > 0 {
		row("lines that are not records", fmt.Sprint(s.badLines))
	}
	w.WriteString("</table>\n")
}
