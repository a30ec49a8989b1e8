package harness

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"
)

// The README's comparison table sits between these markers; UpdateReadme
// rewrites it from a run's kill matrix and memory scenario.
const (
	CompareBegin = "<!-- compare:begin: written by safepool-bench -readme from bench/matrix/results.json -->\n"
	CompareEnd   = "<!-- compare:end -->\n"
)

// compared is one row of the comparison table: a system the harness
// measures (matrix, its name in the kill matrix) or one it does not.
type compared struct {
	name      string
	matrix    string
	fixed     []string // the columns of a system not measured here, marked C or D
	isolation string
	memCap    string
	refs      string // issues behind a measured behaviour
}

var comparedSystems = []compared{
	{name: "**safepool**", matrix: SysSafepool, isolation: "WebAssembly sandbox in a separate process", memCap: "yes"},
	{name: "`multiprocessing.Pool`", matrix: "multiprocessing.Pool", isolation: "separate process, full access", memCap: "no",
		refs: "; bpo-22393 and gh-96062 are open (C)"},
	{name: "`ProcessPoolExecutor`", matrix: "ProcessPoolExecutor", isolation: "separate process, full access", memCap: "no"},
	{name: "billiard", matrix: "billiard", isolation: "separate process, full access", memCap: "no"},
	{name: "pebble", matrix: "pebble", isolation: "separate process, full access", memCap: "no"},
	{name: "joblib / loky", matrix: "joblib (loky)", isolation: "separate process, full access", memCap: "no"},
	{name: "Ray", fixed: []string{"the task is retried (D)", "kept", "yes (D)", "not compared", "not compared"},
		isolation: "separate process, full access", memCap: "a scheduling hint, not a cap (D)"},
	{name: "Extism", fixed: []string{"plugins run inside the host process (D), so the kill ends the host", "lost with the host", "no (D)", "no", "a per-plugin memory cap (D)"},
		isolation: "WebAssembly sandbox, same process", memCap: "yes (D)"},
	{name: "hashicorp/go-plugin", fixed: []string{"calls fail; restarting the plugin process is up to the host (C)", "not a pool", "no", "no", "not compared"},
		isolation: "separate process, full access, native code", memCap: "no"},
}

// CompareTable renders the README's comparison table from r's kill matrix
// (section 7) and memory scenario (section 9). A row whose system r
// measured is marked M; the others keep what was read in their code (C) or
// documentation (D).
func CompareTable(r *Results) string {
	var b bytes.Buffer
	header := []string{"", "worker SIGKILLed mid-map", "other tasks' results", "retry", "says which task was lost",
		"task over its memory budget", "isolation of a task", "per-task memory cap"}
	var rows [][]string
	for _, c := range comparedSystems {
		if c.matrix == "" {
			rows = append(rows, append(append([]string{c.name}, c.fixed...), c.isolation, c.memCap))
			continue
		}
		kills := matrixRows(r.Kills, c.matrix)
		if len(kills) == 0 {
			rows = append(rows, []string{c.name, "not measured in this run", "", "", "", "", c.isolation, c.memCap})
			continue
		}
		rows = append(rows, []string{c.name + " (M)", onKill(kills, r.Options.HangTimeout) + c.refs, othersKept(kills), retried(c, kills), named(c, kills),
			overBudget(matrixRows(r.OOM, c.matrix)), c.isolation, c.memCap})
	}
	table(&b, header, rows)
	return b.String()
}

func matrixRows(rows []KillRow, system string) []KillRow {
	var out []KillRow
	for _, k := range rows {
		if k.System == system {
			out = append(out, k)
		}
	}
	return out
}

// phrase says what one row's map did.
func phrase(k KillRow) string {
	switch {
	case k.Outcome == OutcomeHung:
		return "**hangs**"
	case k.Outcome == OutcomeFailed && k.Policy == "abort":
		return "the map fails with a `*pool.TaskError` naming the task"
	case k.Outcome == OutcomeFailed && k.OK > 0:
		return fmt.Sprintf("**fails**: `%s` on every pending task", k.Error)
	case k.Outcome == OutcomeFailed:
		return fmt.Sprintf("**the whole call fails** with `%s`", k.Error)
	case k.Retried:
		return "the task runs again; the map completes"
	case k.System == SysSafepool:
		return fmt.Sprintf("the task gets `%s`; the map goes on", k.Error)
	}
	return fmt.Sprintf("the task raises `%s`; the map goes on", k.Error)
}

func onKill(kills []KillRow, bound time.Duration) string {
	if len(kills) == 1 {
		k := kills[0]
		s := phrase(k)
		if k.Outcome == OutcomeHung {
			s += " (no result " + fmtDur(bound) + " after the kill)"
		}
		return s
	}
	parts := make([]string, len(kills))
	for i, k := range kills {
		parts[i] = k.Policy + ": " + phrase(k)
	}
	return strings.Join(parts, "; ")
}

func othersKept(kills []KillRow) string {
	k := kills[0]
	switch {
	case k.Outcome == OutcomeHung:
		return "never returned"
	case k.Outcome == OutcomeFailed && k.OK > 0:
		return fmt.Sprintf("those finished before the kill (%d of %d); the rest lost", k.OK, k.Tasks)
	case k.Outcome == OutcomeFailed:
		return "lost with the call"
	case k.InOrder:
		return "kept, in input order"
	}
	return "kept"
}

func retried(c compared, kills []KillRow) string {
	for _, k := range kills {
		if k.Retried {
			if c.matrix == SysSafepool {
				return "yes: attempts, backoff, memory gate, larger cap"
			}
			return "yes"
		}
	}
	if after := kills[0].After; strings.HasPrefix(after, "unusable") {
		return "no; the pool is dead afterwards"
	}
	return "no"
}

func named(c compared, kills []KillRow) string {
	for _, k := range kills {
		if k.Named {
			if c.matrix == SysSafepool {
				return "yes: `KilledTasks`, with input, signal and attempts"
			}
			return "yes, per future"
		}
	}
	return "no"
}

// overBudget says what the memory scenario's rows did.
func overBudget(rows []KillRow) string {
	if len(rows) == 0 {
		return "not measured in this run"
	}
	var parts []string
	for _, k := range rows {
		switch k.Mode {
		case "memory cap":
			if k.Retried {
				parts = append(parts, "retry: runs again under a larger cap and succeeds")
			} else {
				parts = append(parts, fmt.Sprintf("%s: the task gets `%s`, the worker lives", k.Policy, k.Error))
			}
		case "rlimit":
			parts = append(parts, "RLIMIT_AS: "+phrase(k))
		case "rss":
			parts = append(parts, "SIGKILL at an RSS limit: "+phrase(k))
		}
	}
	return strings.Join(parts, "; ")
}

// The README's table of targets sits between these markers; UpdateReadme
// rewrites it from a full run's results (bench/results.json).
const (
	TargetsBegin = "<!-- targets:begin: written by safepool-bench -readme from bench/results.json -->\n"
	TargetsEnd   = "<!-- targets:end -->\n"
)

// The README tables UpdateReadme can rewrite.
const (
	ReadmeCompareTable = "compare" // the comparison table, from the kill matrix and memory scenario
	ReadmeTargetsTable = "targets" // the targets table, from a full run
)

// ReadmeTables lists the names UpdateReadme takes.
var ReadmeTables = []string{ReadmeCompareTable, ReadmeTargetsTable}

// UpdateReadme rewrites the named tables (ReadmeCompareTable, ReadmeTargetsTable) of
// the README at path from r. A table r has no figures for is refused
// rather than written empty.
func UpdateReadme(path string, r *Results, tables ...string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, name := range tables {
		var begin, end, body string
		switch name {
		case ReadmeCompareTable:
			if len(r.Kills) == 0 {
				return fmt.Errorf("harness: the run has no kill matrix for %s's comparison table; run the %s and %s scenarios", path, ScenarioKills, ScenarioOOM)
			}
			begin, end, body = CompareBegin, CompareEnd, CompareTable(r)
		case ReadmeTargetsTable:
			if len(r.Throughput) == 0 {
				return fmt.Errorf("harness: the run has no throughput figures for %s's targets table; run the full harness", path)
			}
			begin, end, body = TargetsBegin, TargetsEnd, TargetsTable(r)
		default:
			return fmt.Errorf("harness: no README table %q; the tables are %s", name, strings.Join(ReadmeTables, ", "))
		}
		i := bytes.Index(b, []byte(begin))
		j := bytes.Index(b, []byte(end))
		if i < 0 || j < i {
			return fmt.Errorf("harness: %s has no %q … %q block for the %s table", path, strings.TrimSpace(begin), strings.TrimSpace(end), name)
		}
		var out bytes.Buffer
		out.Write(b[:i+len(begin)])
		out.WriteString(body)
		out.Write(b[j:])
		b = out.Bytes()
	}
	return os.WriteFile(path, b, 0o644)
}

// ReadmeTable returns the comparison table of a README, as UpdateReadme
// wrote it.
func ReadmeTable(readme []byte) (string, bool) {
	return readmeBlock(readme, CompareBegin, CompareEnd)
}

// ReadmeTargets returns the targets table of a README, as UpdateReadme
// wrote it.
func ReadmeTargets(readme []byte) (string, bool) {
	return readmeBlock(readme, TargetsBegin, TargetsEnd)
}

func readmeBlock(readme []byte, begin, end string) (string, bool) {
	i := bytes.Index(readme, []byte(begin))
	j := bytes.Index(readme, []byte(end))
	if i < 0 || j < i {
		return "", false
	}
	return string(readme[i+len(begin) : j]), true
}
