package harness

import (
	"bytes"
	"fmt"
	"strings"
)

// The kill matrix's panel of the chart: one row per system, one cell per
// way of losing a task, coloured by what the map did.

const (
	matrixCellLeft  = 250
	matrixCellWidth = 262
	matrixGap       = 8
)

// matrixColumns are the panel's columns: a title, and the rows of r that
// fill it.
func matrixColumns(r *Results) []struct {
	title string
	rows  []KillRow
} {
	var rss, rlimit []KillRow
	for _, k := range r.OOM {
		switch k.Mode {
		case "rss":
			rss = append(rss, k)
		case "rlimit":
			rlimit = append(rlimit, k)
		case "memory cap": // safepool's answer to both
			rss, rlimit = append(rss, k), append(rlimit, k)
		}
	}
	return []struct {
		title string
		rows  []KillRow
	}{{"worker SIGKILLed mid-map", r.Kills}, {"over a memory budget: SIGKILL at RSS limit", rss}, {"over a memory budget: RLIMIT_AS", rlimit}}
}

// matrixSystems are the panel's rows: safepool once per policy, then every
// other system of the kill matrix, in its order.
func matrixSystems(r *Results) []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range append(append([]KillRow{}, r.Kills...), r.OOM...) {
		name := k.System
		if k.Policy != "" {
			name += ", " + k.Policy
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

func matrixHeight(r *Results) int {
	if len(r.Kills) == 0 && len(r.OOM) == 0 {
		return 0
	}
	return panelTop + 20 + len(matrixSystems(r))*rowHeight + 36
}

// matrix draws the panel at vertical offset y.
func matrix(b *bytes.Buffer, y int, r *Results) {
	if matrixHeight(r) == 0 {
		return
	}
	fmt.Fprintf(b, `<text x="10" y="%d" font-size="15" font-weight="bold">When a task is lost: what the map does (measured: a real SIGKILL, or a task over its memory budget)</text>`+"\n", y+18)
	fmt.Fprintf(b, `<text x="10" y="%d" fill="#555">green: the map completes with every other result; red: it hangs; amber: the whole call fails or loses other results. "names it": the caller is told which task was lost</text>`+"\n", y+35)
	cols := matrixColumns(r)
	top := y + panelTop + 20
	for i, c := range cols {
		fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", matrixCellLeft+i*(matrixCellWidth+matrixGap), top-6, esc(c.title))
	}
	systems := matrixSystems(r)
	fmt.Fprintf(b, `<text x="10" y="%d" fill="#555">safepool's memory cells: its own cap on the task (Config.MemoryLimit), which stops the task before the worker grows; retry runs it again under a larger cap.</text>`+"\n",
		top+len(systems)*rowHeight+14)
	for j, name := range systems {
		ry := top + j*rowHeight
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end" fill="%s" font-weight="bold">%s</text>`+"\n", matrixCellLeft-10, ry+barHeight-2, systemColor(name), esc(name))
		for i, c := range cols {
			x := matrixCellLeft + i*(matrixCellWidth+matrixGap)
			k, ok := findKill(c.rows, name)
			if !ok {
				fmt.Fprintf(b, `<text x="%d" y="%d" fill="#999">—</text>`+"\n", x+6, ry+barHeight-2)
				continue
			}
			fill := map[string]string{OutcomeCompleted: "#bbf7d0", OutcomeHung: "#fecaca", OutcomeFailed: "#fde68a"}[k.Outcome]
			fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" rx="3" fill="%s"/>`+"\n", x, ry-1, matrixCellWidth, barHeight+4, fill)
			fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", x+6, ry+barHeight-2, esc(cellText(k)))
		}
	}
}

func findKill(rows []KillRow, name string) (KillRow, bool) {
	for _, k := range rows {
		n := k.System
		if k.Policy != "" {
			n += ", " + k.Policy
		}
		if n == name {
			return k, true
		}
	}
	return KillRow{}, false
}

// cellText is one cell: what the map did, in a few words.
func cellText(k KillRow) string {
	var parts []string
	switch {
	case k.Outcome == OutcomeHung:
		parts = append(parts, "HANGS")
	case k.Outcome == OutcomeFailed && k.Policy == "abort":
		parts = append(parts, "aborts by policy")
	case k.Outcome == OutcomeFailed:
		parts = append(parts, "FAILS: "+k.Error)
	default:
		parts = append(parts, "completes")
	}
	if k.Outcome != OutcomeHung {
		parts = append(parts, fmt.Sprintf("%d/%d results", k.OK, k.Tasks))
	}
	if k.Retried {
		parts = append(parts, "retried")
	}
	if k.Named && k.Outcome != OutcomeFailed {
		parts = append(parts, "names it")
	}
	return strings.Join(parts, " · ")
}
