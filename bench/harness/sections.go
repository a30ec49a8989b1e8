package harness

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The report's sections, one per scenario.

func (p *report) throughput() {
	r := p.r
	p.f("%s: square over %s integers, %d workers\n\n", Sections[1], fmtCount(r.Options.ThroughputN), r.Options.Workers)
	if p.skipped(ScenarioThroughput, len(r.Throughput) == 0) {
		return
	}
	p.f("Each input is an ASCII decimal; each output the decimal of its square, checked for every task. ")
	p.f("The systems took turns, %d round(s); \"wall\" is each system's best run and \"median\" the median of its runs, and the per-task and CPU figures come from the best run. ", r.Options.Rounds)
	p.f("Ratios are relative throughput (the other system's time per task ÷ this one's): above 1× is faster. ")
	p.f("\"vs in-process\" compares with in-process wazero running the same guest.\n\n")
	native, _ := findThroughput(r, SysNative, "")
	py, hasPy := findThroughput(r, SysPoolMap, "")
	var rows [][]string
	for _, t := range r.Throughput {
		ns := t.NsPerTask()
		inProc := "—"
		if in, ok := findThroughput(r, SysInProcess, t.Guest); ok && t.Guest != "" {
			inProc = fmtRatio(ratio(in.NsPerTask(), ns))
		}
		vsPy := "—"
		if hasPy {
			vsPy = fmtRatio(ratio(py.NsPerTask(), ns))
		}
		med := "—"
		if len(t.Runs) > 0 {
			med = fmtDur(median(t.Runs))
		}
		rows = append(rows, []string{
			t.System, dash(t.Guest), fmtCount(t.Tasks), fmtDur(t.Elapsed), med, fmtUs(ns),
			trimFloat(ratio(1e3, ns)), cpuPerTask(t.HostCPU, t.Tasks), cpuPerTask(t.WorkerCPU, t.Tasks),
			fmtRatio(ratio(native.NsPerTask(), ns)), inProc, vsPy, yesNo(t.Correct),
		})
	}
	table(p.w, []string{"system", "guest", "tasks", "wall", "median", "µs/task", "M tasks/s", "host CPU µs/task", "worker CPU µs/task",
		"vs native", "vs in-process", "vs Python Pool.map", "all correct"}, rows)
	for _, t := range r.Throughput {
		if shared, ok := findThroughput(r, SysSafepool, t.Guest); ok && t.System == SysSafepoolFresh {
			p.f("Fresh instance (%s): %s µs a task, %s a shared instance's.\n", t.Guest, fmtUs(t.NsPerTask()), fmtRatio(ratio(t.NsPerTask(), shared.NsPerTask())))
		}
	}
	p.pythonNote(ScenarioThroughput)
	p.f("How each system was driven:\n\n")
	for _, t := range r.Throughput {
		if t.Note != "" {
			p.f("- %s%s: %s.\n", t.System, parenGuest(t.Guest), t.Note)
		}
	}
	p.f("\n")

	// The CPU budget: what the worker spends beyond what the same guest
	// costs in process, and what the host spends on dispatch.
	var budget [][]string
	for _, g := range r.Options.Guests {
		sp, ok1 := findThroughput(r, SysSafepool, g)
		in, ok2 := findThroughput(r, SysInProcess, g)
		if !ok1 || !ok2 || sp.WorkerCPU == 0 {
			continue
		}
		inCPU := perTask(in.HostCPU, in.Tasks)
		wCPU := perTask(sp.WorkerCPU, sp.Tasks)
		budget = append(budget, []string{guestLabel(g), fmtUs(inCPU), fmtUs(wCPU), fmtUs(wCPU - inCPU), fmtUs(perTask(sp.HostCPU, sp.Tasks)),
			fmtRatio(ratio(wCPU+perTask(sp.HostCPU, sp.Tasks), inCPU))})
	}
	if len(budget) > 0 {
		p.f("Where the CPU goes (CPU time per task, all workers or goroutines together; process CPU clocks tick every 10 ms, so small figures are coarse):\n\n")
		table(p.w, []string{"guest", "in-process wazero", "safepool workers", "worker cost beyond in-process", "safepool host", "safepool total ÷ in-process"}, budget)
	}
}

func (p *report) latency() {
	r := p.r
	p.f("%s: one task's round trip\n\n", Sections[2])
	if p.skipped(ScenarioLatency, len(r.Latency) == 0) {
		return
	}
	p.f("square(7), %s samples per system after %s untimed ones; the systems took turns in %d rounds. ", fmtCount(r.Options.LatencySamples), fmtCount(max(r.Options.LatencySamples/10, 10)), r.Options.LatencyRounds)
	p.f("\"× in-process\" is this p50 ÷ in-process wazero's p50 on the same guest (the cost of isolation); \"vs Python\" is Python Pool.apply's p50 ÷ this p50 (above 1× is faster).\n\n")
	py, hasPy := findLatency(r, SysPoolApply, "")
	var rows [][]string
	for _, l := range r.Latency {
		inProc := "—"
		if in, ok := findLatency(r, SysInProcess, l.Guest); ok && l.Guest != "" && l.System != SysInProcess {
			inProc = fmtRatio(ratio(float64(l.P50), float64(in.P50)))
		}
		vsPy := "—"
		if hasPy {
			vsPy = fmtRatio(ratio(float64(py.P50), float64(l.P50)))
		}
		rows = append(rows, []string{l.System, dash(l.Guest), fmtCount(l.Samples), fmtDur(l.P50), fmtDur(l.P99), fmtDur(l.Max), fmtDur(l.Mean), inProc, vsPy})
	}
	table(p.w, []string{"system", "guest", "samples", "p50", "p99", "max", "mean", "p50 × in-process", "vs Python Pool.apply (p50)"}, rows)
	for _, l := range r.Latency {
		if shared, ok := findLatency(r, SysSafepool, l.Guest); ok && l.System == SysSafepoolFresh {
			p.f("Fresh instance (%s): p50 %s a shared instance's.\n", l.Guest, fmtRatio(ratio(float64(l.P50), float64(shared.P50))))
		}
	}
	p.pythonNote(ScenarioLatency)
	for _, l := range r.Latency {
		if l.Note != "" {
			p.f("- %s%s: %s.\n", l.System, parenGuest(l.Guest), l.Note)
		}
	}
	p.f("\n")
}

func (p *report) recovery() {
	r := p.r
	p.f("%s: from a real SIGKILL to the task running again and the pool back at full strength\n\n", Sections[3])
	if p.skipped(ScenarioRecovery, len(r.Recovery) == 0) {
		return
	}
	p.f("`syscall.Kill(pid, SIGKILL)` of the worker, timed from just before the kill to `OnEvent`'s `EventTaskStart` with `Attempt == 2` ")
	p.f("(the retry started) and to the replacement's `EventWorkerStart` (handshake done) or, with a spare worker (`Config.Spares`), to `EventSparePromoted`, ")
	p.f("warm compilation cache, `KillPolicy: pool.Retry`. ")
	p.f("The near-zero backoff measures the pool itself; the default backoff adds its deliberate 5–10 ms wait. ")
	p.f("A spare is a started, idle worker that takes a dead worker's place at once; it costs one idle worker's memory (section 6).\n\n")
	var rows [][]string
	for _, rec := range r.Recovery {
		retry := []string{"—", "—", "—"}
		if len(rec.Retry) > 0 {
			retry = quantiles(rec.Retry)
		}
		rows = append(rows, append(append([]string{guestLabel(rec.Guest), rec.Mode, rec.Backoff, fmt.Sprint(rec.Spares), fmt.Sprint(len(rec.Full))}, retry...), quantiles(rec.Full)...))
	}
	table(p.w, []string{"guest", "killed", "Retry.Backoff", "spares", "kills", "→ retry started p50", "p90", "max", "→ full strength p50", "p90", "max"}, rows)
	p.f("Python: no figure. `multiprocessing.Pool` replaces a killed worker but never re-runs its tasks, `ProcessPoolExecutor` breaks for good, and none of the Python pools re-runs a killed task (section 7).\n\n")
}

func (p *report) startup() {
	r := p.r
	p.f("%s: pool.New with %d workers until the first Apply result\n\n", Sections[4], r.Options.Workers)
	if p.skipped(ScenarioStartup, len(r.Startup) == 0) {
		return
	}
	p.f("Warm: the compilation cache already holds the module. Cold: a fresh, empty `CacheDir` per start-up. ")
	p.f("Compilations are counted by watching the cache directory with inotify: wazero writes every compiled module to a uniquely named temporary file before renaming it, ")
	p.f("so a compilation per worker would show as one file per worker even though they all end under one name. Python: `Pool(%d)` or `ProcessPoolExecutor(%d)` until the first result.\n\n", r.Options.Workers, r.Options.Workers)
	var pyStart time.Duration
	for _, s := range r.Startup {
		if s.System == SysPoolStart && len(s.Times) > 0 {
			pyStart = median(s.Times)
		}
	}
	var rows [][]string
	for _, s := range r.Startup {
		if len(s.Times) == 0 {
			continue
		}
		comp, files := "—", "—"
		if s.System == SysSafepool {
			comp = joinInts(s.Compiles)
			if s.Cache == "cold" {
				files = fmt.Sprint(s.CacheFiles)
			}
		}
		p50, newP50 := median(s.Times), "—"
		if len(s.NewTimes) > 0 {
			newP50 = fmtDur(median(s.NewTimes))
		}
		rows = append(rows, []string{s.System, dash(s.Guest), s.Cache, fmt.Sprint(len(s.Times)), fmtDur(p50), newP50,
			fmtDur(slices.Min(s.Times)), fmtDur(slices.Max(s.Times)), comp, files, fmtRatio(ratio(float64(p50), float64(pyStart)))})
	}
	table(p.w, []string{"system", "guest", "cache", "start-ups", "p50", "of which pool.New (p50)", "min", "max", "compilations per start-up", "cache files after", "p50 × Python Pool"}, rows)
	p.pythonNote(ScenarioStartup)
}

func (p *report) chaos() {
	r := p.r
	p.f("%s: a worker SIGKILLed every %s\n\n", Sections[5], fmtDur(r.Options.ChaosEvery))
	if p.skipped(ScenarioChaos, len(r.Chaos) == 0) {
		return
	}
	p.f("The same Map of square, calm and then with the longest-running worker SIGKILLed every %s (a map that is calm for less than %d kill intervals is made longer); ", fmtDur(r.Options.ChaosEvery), chaosMinKills)
	p.f("`KillPolicy: pool.Retry`, `Retry.MaxAttempts: 10`, every result checked. Python has no figure: its pools hang, break or fail the call on the first kill (section 7).\n\n")
	var rows [][]string
	for _, c := range r.Chaos {
		chaos, pct := fmtUs(perTask(c.Chaos, c.Tasks)), fmtPct(c.Ratio())
		if !c.Correct {
			chaos, pct = "—", "**failed**"
		}
		rows = append(rows, []string{guestLabel(c.Guest), fmtCount(c.Tasks), fmtDur(c.Calm), fmtDur(c.Chaos), fmt.Sprint(c.Kills), fmt.Sprint(c.Retried),
			fmtUs(perTask(c.Calm, c.Tasks)), chaos, pct, yesNo(c.Correct), oneLine(c.Detail)})
	}
	table(p.w, []string{"guest", "tasks", "calm", "chaos wall", "kills", "retries", "calm µs/task", "chaos µs/task", "chaos ÷ calm throughput", "all correct", "outcome"}, rows)
}

func (p *report) memory() {
	r := p.r
	p.f("%s\n\n", Sections[6])
	if p.skipped(ScenarioMemory, len(r.IdleRSS) == 0 && r.Stream == nil) {
		return
	}
	p.f("Idle workers: VmRSS from `/proc/<pid>/status` of each worker (pids from `EventWorkerStart`), after a 1,000-task map and a 300 ms pause.\n\n")
	var rows [][]string
	var pyMax int64
	for _, m := range r.IdleRSS {
		if m.System == SysPoolStart && len(m.KiB) > 0 {
			pyMax = slices.Max(m.KiB)
		}
	}
	for _, m := range r.IdleRSS {
		if len(m.KiB) == 0 {
			continue
		}
		per := make([]string, len(m.KiB))
		for i, k := range m.KiB {
			per[i] = fmtKiB(k)
		}
		hi := slices.Max(m.KiB)
		rows = append(rows, []string{m.System, dash(m.Guest), strings.Join(per, ", "), fmtKiB(hi), fmtRatio(ratio(float64(hi), float64(pyMax)))})
	}
	table(p.w, []string{"system", "guest", "RSS per idle worker", "largest", "× Python Pool worker"}, rows)
	p.pythonNote(ScenarioMemory)
	if s := r.Stream; s != nil {
		p.f("Host: VmRSS of this process sampled every 10 ms while `Imap` streamed %s fresh inputs through a window of %s; before the start figure the garbage of earlier scenarios was collected and returned to the system (debug.FreeOSMemory).\n\n",
			fmtCount(s.Items), fmtCount(s.Window))
		table(p.w, []string{"guest", "items", "window", "wall", "µs/item", "RSS start", "RSS peak", "RSS end", "peak − start", "samples", "all correct"},
			[][]string{{guestLabel(s.Guest), fmtCount(s.Items), fmtCount(s.Window), fmtDur(s.Elapsed), fmtUs(perTask(s.Elapsed, s.Items)),
				fmtKiB(s.StartKiB), fmtKiB(s.PeakKiB), fmtKiB(s.EndKiB), fmtKiB(s.PeakKiB - s.StartKiB), fmt.Sprint(s.Samples), yesNo(s.Correct)}})
	}
}

func (p *report) cli() {
	r := p.r
	p.f("%s: `safepool run` over JSON Lines, %d workers\n\n", Sections[8], r.Options.Workers)
	if p.skipped(ScenarioCLI, len(r.CLI) == 0) {
		return
	}
	sizes := cliSizes(r)
	counts := make([]string, len(sizes))
	for i, n := range sizes {
		counts[i] = fmtCount(n)
	}
	p.f("Files of %s lines, the JSON numbers 0 … N−1 one per line, squared and written out as JSON Lines; ", strings.Join(counts, " and "))
	p.f("every output file is checked: N lines, in input order, each the square of its index. ")
	p.f("Each program is a child process of the harness, timed from its start to its exit (its own start-up, its workers' and the whole job), after an untimed run over %s lines; the systems take turns at each size, one run each. ", fmtCount(cliWarmLines))
	p.f("**Peak RSS** is the program's own peak resident set: VmHWM from `/proc/<pid>/status`, read every %s while it runs. ", fmtDur(cliSample))
	p.f("**Worker peak** is the largest VmHWM of the processes it started (its workers), read the same way, with the number of them seen; each is counted apart, not added to the program's. ")
	p.f("Not `ru_maxrss` from the rusage of the wait: Linux keeps it across `execve`, and a child of this harness starts as a vfork that shares the harness's memory, so it reports at least the harness's own peak, whatever the program uses; it also takes in the peaks of the workers the program reaped. ")
	p.f("CPU is the user and system time of the program and its workers, from that rusage. ")
	p.f("\"vs Python\" is the Python script's wall time at the same size ÷ this one (above 1× is faster); \"peak RSS × Python\" is this peak RSS ÷ the script's.\n\n")
	var rows [][]string
	for _, c := range r.CLI {
		vsPy, rssPy := "—", "—"
		if py, ok := findCLI(r, SysPyCLI, "", c.Lines); ok {
			vsPy = fmtRatio(ratio(float64(py.Elapsed), float64(c.Elapsed)))
			rssPy = fmtRatio(ratio(float64(c.PeakKiB), float64(py.PeakKiB)))
		}
		rows = append(rows, []string{c.System, dash(c.Guest), fmtCount(c.Lines), fmtDur(c.Elapsed), fmtUs(c.NsPerLine()), cpuPerTask(c.CPU, c.Lines),
			peakKiB(c.PeakKiB), workerPeak(c), vsPy, rssPy, yesNo(c.Correct)})
	}
	table(p.w, []string{"system", "guest", "lines", "wall", "µs/line", "CPU µs/line (with workers)", "peak RSS", "worker peak RSS (largest)", "vs Python (wall)", "peak RSS × Python", "all correct"}, rows)
	p.pythonNote(ScenarioCLI)

	if len(sizes) > 1 {
		lo, hi := sizes[0], sizes[len(sizes)-1]
		p.f("Peak RSS against the input size: the program's own peak at each size, and the largest size's ÷ the smallest's (the goal for `safepool run` is at most %.2f×: a stream's memory does not grow with its input).\n\n", goalCLIFlat)
		header := []string{"system", "guest"}
		for _, c := range counts {
			header = append(header, c+" lines")
		}
		header = append(header, fmt.Sprintf("%s ÷ %s lines", fmtCount(hi), fmtCount(lo)), "worker peak, same ratio")
		var flat [][]string
		seen := map[string]bool{}
		for _, c := range r.CLI {
			key := c.System + "/" + c.Guest
			if seen[key] {
				continue
			}
			seen[key] = true
			row := []string{c.System, dash(c.Guest)}
			for _, n := range sizes {
				if x, ok := findCLI(r, c.System, c.Guest, n); ok {
					row = append(row, peakKiB(x.PeakKiB))
				} else {
					row = append(row, "—")
				}
			}
			a, okA := findCLI(r, c.System, c.Guest, lo)
			z, okZ := findCLI(r, c.System, c.Guest, hi)
			growth, growthMax := "—", "—"
			if okA && okZ {
				growth = fmtRatio(ratio(float64(z.PeakKiB), float64(a.PeakKiB)))
				growthMax = fmtRatio(ratio(float64(z.WorkerPeakKiB), float64(a.WorkerPeakKiB)))
			}
			flat = append(flat, append(row, growth, growthMax))
		}
		table(p.w, header, flat)
	}
	p.f("How each system was driven:\n\n")
	seen := map[string]bool{}
	for _, c := range r.CLI {
		key := c.System + "/" + c.Guest
		if c.Note != "" && !seen[key] {
			seen[key] = true
			p.f("- %s%s: %s.\n", c.System, parenGuest(c.Guest), c.Note)
		}
	}
	p.f("\n")
}

// cliSizes are the input sizes the command-line scenario measured,
// smallest first.
func cliSizes(r *Results) []int {
	var sizes []int
	for _, c := range r.CLI {
		sizes = append(sizes, c.Lines)
	}
	slices.Sort(sizes)
	return slices.Compact(sizes)
}

// workerPeak is the largest worker's peak RSS, and how many workers
// there were.
func workerPeak(c CLIRun) string {
	if c.WorkerPeakKiB <= 0 {
		return "—"
	}
	if c.Workers == 1 {
		return fmtKiB(c.WorkerPeakKiB) + " (1 process)"
	}
	return fmt.Sprintf("%s (%d processes)", fmtKiB(c.WorkerPeakKiB), c.Workers)
}

func peakKiB(k int64) string {
	if k <= 0 {
		return "—"
	}
	return fmtKiB(k)
}
