package harness

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// bar is one row of a chart panel.
type bar struct {
	label string
	value float64 // the bar
	extra float64 // a lighter bar behind it (p99), 0 for none
	text  string  // printed after the bar
	color string
}

// Chart layout, in pixels.
const (
	chartWidth  = 1060
	labelRight  = 330 // labels end here
	barLeft     = 340
	barWidth    = 470
	rowHeight   = 24
	barHeight   = 15
	panelTop    = 46 // title and subtitle above the first row
	panelBottom = 40 // axis labels below the last row
)

// WriteChart draws the throughput and latency of every system as an SVG
// image: two panels of horizontal bars on logarithmic axes, since the
// systems are orders of magnitude apart.
func WriteChart(w io.Writer, r *Results) error {
	var tput, lat []bar
	for _, t := range r.Throughput {
		if ns := t.NsPerTask(); ns > 0 {
			v := 1e3 / ns // million tasks per second
			tput = append(tput, bar{label: chartLabel(t.System, t.Guest), value: v, text: trimFloat(v) + " M/s", color: systemColor(t.System)})
		}
	}
	for _, l := range r.Latency {
		if l.P50 > 0 {
			p50, p99 := float64(l.P50.Nanoseconds())/1e3, float64(l.P99.Nanoseconds())/1e3
			lat = append(lat, bar{label: chartLabel(l.System, l.Guest), value: p50, extra: p99,
				text: "p50 " + fmtDur(l.P50) + " · p99 " + fmtDur(l.P99), color: systemColor(l.System)})
		}
	}
	var b bytes.Buffer
	h0 := legendHeight
	h1 := panelHeight(len(tput))
	h2 := panelHeight(len(lat))
	h3 := matrixHeight(r)
	total := h0 + h1 + h2 + 20 + h3
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n",
		chartWidth, total, chartWidth, total)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	mode := ""
	if r.Options.Quick {
		mode = " (quick mode: small sizes)"
	}
	legend(&b)
	panel(&b, h0, fmt.Sprintf("Throughput: square over %s integers, %d workers%s", fmtCount(r.Options.ThroughputN), r.Options.Workers, mode),
		"million tasks per second, log scale; longer is better", tput)
	panel(&b, h0+h1+20, "Round trip of one task (Apply and its equivalents)",
		"microseconds, log scale; dark bar p50, light bar p99; shorter is better", lat)
	matrix(&b, h0+h1+h2+20, r)
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

func panelHeight(rows int) int { return panelTop + max(rows, 1)*rowHeight + panelBottom }

// panel draws one titled panel of bars at vertical offset y.
func panel(b *bytes.Buffer, y int, title, subtitle string, bars []bar) {
	fmt.Fprintf(b, `<text x="10" y="%d" font-size="15" font-weight="bold">%s</text>`+"\n", y+18, esc(title))
	fmt.Fprintf(b, `<text x="10" y="%d" fill="#555">%s</text>`+"\n", y+35, esc(subtitle))
	if len(bars) == 0 {
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="#555">no figures</text>`+"\n", barLeft, y+panelTop+16)
		return
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, br := range bars {
		lo = math.Min(lo, br.value)
		hi = math.Max(hi, math.Max(br.value, br.extra))
	}
	lo, hi = math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if hi <= lo {
		hi = lo + 1
	}
	x := func(v float64) float64 {
		return barLeft + (math.Log10(v)-lo)/(hi-lo)*barWidth
	}
	top, bottom := y+panelTop, y+panelTop+len(bars)*rowHeight
	// Decade grid lines and their labels.
	for d := lo; d <= hi; d++ {
		gx := x(math.Pow(10, d))
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", gx, top-4, gx, bottom)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>`+"\n", gx, bottom+16, esc(decade(d)))
	}
	for i, br := range bars {
		ry := top + i*rowHeight
		fmt.Fprintf(b, `<text class="bar-label" x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelRight, ry+barHeight-3, esc(br.label))
		if br.extra > 0 {
			fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s" opacity="0.3"/>`+"\n",
				barLeft, ry, math.Max(x(br.extra)-barLeft, 1), barHeight, br.color)
		}
		end := math.Max(x(br.value), barLeft+1)
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", barLeft, ry, end-barLeft, barHeight, br.color)
		textX := end
		if br.extra > 0 {
			textX = math.Max(end, x(br.extra))
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%d" fill="#222">%s</text>`+"\n", textX+6, ry+barHeight-3, esc(br.text))
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`+"\n", barLeft, top-4, barLeft, bottom)
}

func decade(d float64) string {
	v := math.Pow(10, d)
	if v >= 1 {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(fmt.Sprintf("%.6f", v), "0")
}

func chartLabel(system, guest string) string {
	if guest == "" {
		return system
	}
	return system + " · " + guest
}

// families are the colours of the chart, one per family of systems, in
// the legend's order.
var families = []struct{ name, color string }{
	{"safepool", "#16a34a"},
	{"in-process wazero", "#2563eb"},
	{"native / pipe floor", "#6b7280"},
	{"Python stdlib", "#ea580c"},
	{"billiard", "#9333ea"},
	{"pebble", "#0891b2"},
	{"joblib / loky", "#be185d"},
}

// systemColor gives each family of systems its colour.
func systemColor(system string) string {
	family := "Python stdlib"
	switch {
	case system == SysNative || system == SysPipe:
		family = "native / pipe floor"
	case system == SysInProcess:
		family = "in-process wazero"
	case strings.HasPrefix(system, "safepool"):
		family = "safepool"
	case strings.HasPrefix(system, "billiard"):
		family = "billiard"
	case strings.HasPrefix(system, "pebble"):
		family = "pebble"
	case strings.HasPrefix(system, "joblib"):
		family = "joblib / loky"
	}
	for _, f := range families {
		if f.name == family {
			return f.color
		}
	}
	return "#000"
}

const legendHeight = 30

// legend draws the colour of each family in one row.
func legend(b *bytes.Buffer) {
	x := 10
	for _, f := range families {
		fmt.Fprintf(b, `<rect x="%d" y="10" width="12" height="12" fill="%s"/>`+"\n", x, f.color)
		fmt.Fprintf(b, `<text x="%d" y="20">%s</text>`+"\n", x+17, esc(f.name))
		x += 30 + 7*len(f.name)
	}
}

func esc(s string) string { return html.EscapeString(s) }
