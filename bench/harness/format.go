package harness

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// fmtDur prints a duration with three significant digits or so, in the unit
// that suits it.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return fmt.Sprintf("%d ns", d.Nanoseconds())
	case d < time.Millisecond:
		return trimFloat(float64(d.Nanoseconds())/1e3) + " µs"
	case d < time.Second:
		return trimFloat(float64(d.Nanoseconds())/1e6) + " ms"
	}
	return trimFloat(d.Seconds()) + " s"
}

// trimFloat prints v with one decimal under 100 and none above.
func trimFloat(v float64) string {
	if v >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	if v >= 10 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// fmtUs prints nanoseconds as microseconds.
func fmtUs(ns float64) string {
	if ns == 0 {
		return "—"
	}
	return trimFloat(ns / 1e3)
}

func fmtKiB(kib int64) string {
	if kib < 0 {
		return "-" + fmtKiB(-kib)
	}
	if kib < 1024 {
		return fmt.Sprintf("%d KiB", kib)
	}
	return trimFloat(float64(kib)/1024) + " MiB"
}

// fmtCount prints n with thousands separators: 1,000,000.
func fmtCount(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// fmtRatio prints a ratio as "1.23×", or "—" when there is none.
func fmtRatio(x float64) string {
	if x == 0 {
		return "—"
	}
	if x >= 10 {
		return strconv.FormatFloat(x, 'f', 0, 64) + "×"
	}
	if x >= 0.1 {
		return strconv.FormatFloat(x, 'f', 2, 64) + "×"
	}
	return strconv.FormatFloat(x, 'f', 3, 64) + "×"
}

func fmtPct(x float64) string {
	if x == 0 {
		return "—"
	}
	return strconv.FormatFloat(100*x, 'f', 0, 64) + "%"
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		if n < 0 {
			s[i] = "?"
		} else {
			s[i] = strconv.Itoa(n)
		}
	}
	return strings.Join(s, ", ")
}

// table writes a Markdown table. Cells must not hold '|'.
func table(w io.Writer, header []string, rows [][]string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(header, " | "))
	seps := make([]string, len(header))
	for i := range seps {
		seps[i] = "---"
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(seps, " | "))
	for _, r := range rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
	fmt.Fprintln(w)
}
