package harness

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Sections are the headings of the report, in order: the targets, then one
// per scenario.
var Sections = []string{
	"## Targets",
	"## 1. Throughput",
	"## 2. Latency",
	"## 3. Kill recovery",
	"## 4. Start-up",
	"## 5. Chaos throughput",
	"## 6. Memory",
	"## 7. A worker SIGKILLed mid-map: the kill matrix",
	"## 8. The command line",
	"## 9. A task over its memory budget",
	"## 10. The cost of the metrics",
	clusterSection,
}

// WriteReport renders r as Markdown. chart, when not empty, is the path of
// the SVG chart relative to the report, which the report embeds.
func WriteReport(w io.Writer, r *Results, chart string) error {
	var b bytes.Buffer
	rep := &report{w: &b, r: r}
	rep.header(chart)
	rep.targets()
	rep.throughput()
	rep.latency()
	rep.recovery()
	rep.startup()
	rep.chaos()
	rep.memory()
	rep.kills()
	rep.cli()
	rep.oom()
	rep.metricsCost()
	rep.cluster()
	rep.failures()
	_, err := w.Write(b.Bytes())
	return err
}

type report struct {
	w io.Writer
	r *Results
}

func (p *report) f(format string, a ...any) { fmt.Fprintf(p.w, format, a...) }

// skipped writes why a scenario has no figures and reports whether it has
// none.
func (p *report) skipped(scenario string, empty bool) bool {
	if msg := p.r.Failures[scenario]; msg != "" {
		p.f("**The scenario failed:** `%s`\n\n", oneLine(msg))
		if empty {
			return true
		}
		p.f("The rows measured before it failed:\n\n")
		return false
	}
	if empty {
		if len(p.r.Options.Only) > 0 && !slices.Contains(p.r.Options.Only, scenario) {
			p.f("Not run in this run (`-only %s`).\n\n", strings.Join(p.r.Options.Only, ","))
		} else {
			p.f("No figures.\n\n")
		}
		return true
	}
	return false
}

func (p *report) pythonNote(scenario string) {
	switch {
	case !p.r.Python.Ran:
		p.f("Python baselines: %s.\n\n", p.r.Python.Reason)
	case p.r.Failures[scenario+"/python"] != "":
		p.f("**The Python baseline failed:** `%s`\n\n", oneLine(p.r.Failures[scenario+"/python"]))
	}
}

func (p *report) header(chart string) {
	r, m := p.r, p.r.Machine
	mode := "full"
	if r.Options.Quick {
		mode = "quick (smoke test: sizes too small for the figures to mean much)"
	}
	p.f("# safepool benchmark results\n\n")
	p.f("Written by `go run ./bench/cmd/safepool-bench` (see [README.md](README.md)). Every system ran on the same machine in the same run, one after another; ")
	p.f("the machine is shared and noisy, so compare the ratios, which are taken side by side, more than the absolute figures.\n\n")
	py := "not run: " + r.Python.Reason
	if r.Python.Ran {
		py = r.Python.Version
	}
	rows := [][]string{
		{"CPU", m.CPU},
		{"cores", fmt.Sprint(m.Cores)},
		{"memory", m.Memory},
		{"kernel", m.Kernel},
		{"Go", m.GoVersion},
		{"Python", py},
		{"Python peers", p.peersLine()},
		{"date", m.Date.UTC().Format("2006-01-02 15:04 MST")},
		{"run time", r.Finished.Sub(r.Started).Round(time.Second).String()},
		{"load average (1, 5, 15 min) before → after", m.LoadStart + " → " + m.LoadEnd},
		{"mode", mode},
		{"quiet machine", quietNote(r)},
		{"workers", fmt.Sprint(r.Options.Workers)},
	}
	if m.Revision != "" {
		rows = append(rows, []string{"revision", m.Revision})
	}
	table(p.w, []string{"machine", ""}, rows)
	if chart != "" {
		p.f("![Throughput and latency per system](%s)\n\n", chart)
	}
}

func (p *report) targets() {
	p.f("%s\n\n", Sections[0])
	p.f("Goals for a 2-core machine, judged on this run. \"Check\" rows are correctness checks of the scenarios.\n\n")
	p.f("%s", TargetsTable(p.r))
}

// TargetsTable renders the targets r was judged on, one row each, with
// the verdict: met, not met, or n/a when r has no figure for it.
func TargetsTable(r *Results) string {
	var b bytes.Buffer
	var rows [][]string
	for _, t := range Targets(r) {
		verdict := "n/a"
		if t.Met != nil {
			verdict = "met"
			if !*t.Met {
				verdict = "**not met**"
			}
		}
		name := t.Name
		if t.Check {
			name = "Check: " + name
		}
		rows = append(rows, []string{name, t.Scope, t.Measured, t.Goal, verdict})
	}
	table(&b, []string{"target", "on", "measured", "goal", "verdict"}, rows)
	return b.String()
}

func (p *report) failures() {
	if len(p.r.Failures) == 0 {
		return
	}
	p.f("## Failures\n\n")
	keys := make([]string, 0, len(p.r.Failures))
	for k := range p.r.Failures {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p.f("- %s: `%s`\n", k, oneLine(p.r.Failures[k]))
	}
	p.f("\n")
}

func quantiles(ds []time.Duration) []string {
	if len(ds) == 0 {
		return []string{"—", "—", "—"}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return []string{fmtDur(percentile(s, 50)), fmtDur(percentile(s, 90)), fmtDur(s[len(s)-1])}
}

func cpuPerTask(d time.Duration, n int) string {
	if d == 0 {
		return "—"
	}
	return fmtUs(perTask(d, n))
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func parenGuest(g string) string {
	if g == "" {
		return ""
	}
	return " (" + g + ")"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

// oneLine makes an error message safe for a Markdown table or code span.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	return strings.ReplaceAll(s, "`", "'")
}

func quietNote(r *Results) string {
	q := r.Quiet
	if r.Options.Quiet <= 0 || q.Measurements == 0 {
		return "not waited for"
	}
	return fmt.Sprintf("each measurement waited up to %s for ≥ %.0f%% idle CPU; %d of %d started on a busy machine anyway; %s waited in all",
		fmtDur(r.Options.Quiet), 100*quietIdle, q.Busy, q.Measurements, q.Waited.Round(time.Second))
}
