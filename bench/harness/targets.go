package harness

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Target is one goal and whether a run met it.
type Target struct {
	Name     string
	Scope    string // the guest or system it was judged on
	Measured string
	Goal     string
	// Met is nil when the run did not measure it (a scenario was skipped,
	// failed, or needs Python).
	Met *bool
	// Check marks a correctness check of a scenario, as opposed to one of
	// the performance targets.
	Check bool
}

// Goals of the targets.
const (
	goalVsPython     = 2.0  // × Python Pool.map throughput
	goalVsPythonGo   = 1.0  // × Python Pool.map throughput, for the Go SDK guest (its stretch is goalVsPython)
	goalIsolation    = 0.70 // of in-process wazero throughput
	goalApplyP50     = 25 * time.Microsecond
	goalApplyP99     = 100 * time.Microsecond
	goalFreshApply   = 3.0 // × a shared instance's Apply p50, with FreshInstance
	goalFreshMap     = 3.0 // × a shared instance's Map time per task, with FreshInstance
	goalRetry        = 5 * time.Millisecond
	goalFullStrength = 50 * time.Millisecond
	goalWarmStart    = 100 * time.Millisecond
	goalChaos        = 0.80
	goalIdleRSSKiB   = 30_000_000 / 1024 // 30 MB
	goalStreamKiB    = 64 << 10          // RSS growth allowed while streaming
	goalCLIFlat      = 1.25              // CLI peak RSS, largest input ÷ smallest
	goalCLIVsPython  = 2.0               // × the Python script's speed, at the smallest size
	goalCLIPeakKiB   = 200 << 10         // CLI peak RSS while it beats the script
)

// Targets judges r against the goals. Every guest of the run gets its own
// row where the guest matters; rows that r has no figures for have a nil
// Met.
func Targets(r *Results) []Target {
	var ts []Target
	add := func(name, scope, measured, goal string, met *bool) {
		ts = append(ts, Target{Name: name, Scope: scope, Measured: measured, Goal: goal, Met: met})
	}
	pyMap, hasPy := findThroughput(r, SysPoolMap, "")
	for _, g := range r.Options.Guests {
		sp, ok := findThroughput(r, SysSafepool, g)
		in, okIn := findThroughput(r, SysInProcess, g)
		want, goal := vsPythonGoal(g)
		switch {
		case ok && hasPy:
			x := ratio(pyMap.NsPerTask(), sp.NsPerTask())
			measured := fmt.Sprintf("%.2f× (%.2f vs %.2f µs/task)", x, sp.NsPerTask()/1e3, pyMap.NsPerTask()/1e3)
			if okIn {
				measured += beyondReach(pyMap.NsPerTask()/want, in.NsPerTask())
			}
			add("Throughput vs Python Pool.map (default chunking)", guestLabel(g), measured, goal, met(x >= want))
		default:
			add("Throughput vs Python Pool.map (default chunking)", guestLabel(g), notMeasured(r, ScenarioThroughput, !hasPy), goal, nil)
		}
		if ok && okIn {
			x := ratio(in.NsPerTask(), sp.NsPerTask())
			measured := fmt.Sprintf("%.0f%% (%.2f vs %.2f µs/task)", 100*x, sp.NsPerTask()/1e3, in.NsPerTask()/1e3)
			if sp.WorkerCPU > 0 && in.HostCPU > 0 {
				// CPU time is less disturbed than wall time by other
				// processes on a shared machine.
				measured += fmt.Sprintf("; by CPU time %.0f%%", 100*ratio(perTask(in.HostCPU, in.Tasks), perTask(sp.WorkerCPU+sp.HostCPU, sp.Tasks)))
			}
			add("Isolation cost: safepool ÷ in-process wazero throughput", guestLabel(g),
				measured, fmt.Sprintf("≥ %.0f%%", 100*goalIsolation), met(x >= goalIsolation))
		} else {
			add("Isolation cost: safepool ÷ in-process wazero throughput", guestLabel(g), notMeasured(r, ScenarioThroughput, false), fmt.Sprintf("≥ %.0f%%", 100*goalIsolation), nil)
		}
	}
	// The bare pipe round trip is the floor any process pool stands on: a
	// tail above the goal there is the machine's, and the report says so.
	floor := ""
	if pipe, ok := findLatency(r, SysPipe, ""); ok {
		floor = fmt.Sprintf(" (pipe round trip here: p50 %s, p99 %s)", fmtDur(pipe.P50), fmtDur(pipe.P99))
	}
	for _, g := range r.Options.Guests {
		l, ok := findLatency(r, SysSafepool, g)
		if ok {
			add("Apply round trip p50", guestLabel(g), fmtDur(l.P50)+floor, "≤ "+fmtDur(goalApplyP50), met(l.P50 <= goalApplyP50))
			add("Apply round trip p99", guestLabel(g), fmtDur(l.P99)+floor, "≤ "+fmtDur(goalApplyP99), met(l.P99 <= goalApplyP99))
		} else {
			add("Apply round trip p50", guestLabel(g), notMeasured(r, ScenarioLatency, false), "≤ "+fmtDur(goalApplyP50), nil)
			add("Apply round trip p99", guestLabel(g), notMeasured(r, ScenarioLatency, false), "≤ "+fmtDur(goalApplyP99), nil)
		}
	}
	// FreshInstance: what a task's own fresh instance costs, as the ratio
	// of the two pools' p50 in the same run.
	for _, g := range r.Options.Guests {
		const name = "Fresh instance: Apply p50 ÷ a shared instance's"
		goal := fmt.Sprintf("≤ %.0f×", goalFreshApply)
		shared, ok := findLatency(r, SysSafepool, g)
		fresh, okFresh := findLatency(r, SysSafepoolFresh, g)
		if !ok || !okFresh || shared.P50 <= 0 {
			add(name, guestLabel(g), notMeasured(r, ScenarioLatency, false), goal, nil)
			continue
		}
		x := ratio(float64(fresh.P50), float64(shared.P50))
		add(name, guestLabel(g), fmt.Sprintf("%.2f× (%s vs %s)", x, fmtDur(fresh.P50), fmtDur(shared.P50)), goal, met(x <= goalFreshApply))
	}
	// And in a Map, where a shared instance runs a batch in one guest call
	// and a fresh one a call and a reset a task: the ratio of the two
	// pools' time per task in the same run. Results whose throughput
	// scenario ran with no fresh row at all were recorded before the
	// harness measured it, and get no row rather than a false "not
	// measured" (the README's table is rendered from such a run until the
	// next full one).
	freshMapGuests := r.Options.Guests
	if !hasFreshMap(r) && scenarioRan(r, ScenarioThroughput) {
		freshMapGuests = nil
	}
	for _, g := range freshMapGuests {
		const name = "Fresh instance: Map time per task ÷ a shared instance's"
		goal := fmt.Sprintf("≤ %.0f×", goalFreshMap)
		shared, ok := findThroughput(r, SysSafepool, g)
		fresh, okFresh := findThroughput(r, SysSafepoolFresh, g)
		if !ok || !okFresh || shared.NsPerTask() <= 0 {
			add(name, guestLabel(g), notMeasured(r, ScenarioThroughput, false), goal, nil)
			continue
		}
		x := ratio(fresh.NsPerTask(), shared.NsPerTask())
		add(name, guestLabel(g), fmt.Sprintf("%.2f× (%s vs %s µs/task)", x, fmtUs(fresh.NsPerTask()), fmtUs(shared.NsPerTask())), goal, met(x <= goalFreshMap))
	}

	var retryRow, spareRow, idleRow *Recovery
	for i := range r.Recovery {
		rec := &r.Recovery[i]
		switch {
		case len(rec.Retry) > 0 && rec.Spares > 0 && spareRow == nil:
			spareRow = rec
		case len(rec.Retry) > 0 && rec.Backoff != "" && !strings.HasPrefix(rec.Backoff, "default") && retryRow == nil:
			retryRow = rec
		case len(rec.Retry) == 0 && idleRow == nil:
			idleRow = rec
		}
	}
	if retryRow != nil {
		p := median(retryRow.Retry)
		add("Kill → killed task started again, p50", guestLabel(retryRow.Guest)+", Retry.Backoff "+retryRow.Backoff,
			fmtDur(p), "≤ "+fmtDur(goalRetry), met(p <= goalRetry))
		p = median(retryRow.Full)
		add("Kill → full strength (replacement worker ready), p50, warm cache", guestLabel(retryRow.Guest),
			fmtDur(p), "≤ "+fmtDur(goalFullStrength), met(p <= goalFullStrength))
	} else {
		add("Kill → killed task started again, p50", guestLabel(GoGuest), notMeasured(r, ScenarioRecovery, false), "≤ "+fmtDur(goalRetry), nil)
		add("Kill → full strength (replacement worker ready), p50, warm cache", guestLabel(GoGuest), notMeasured(r, ScenarioRecovery, false), "≤ "+fmtDur(goalFullStrength), nil)
	}
	if spareRow != nil {
		label := fmt.Sprintf("%s, Retry.Backoff %s, Spares %d", guestLabel(spareRow.Guest), spareRow.Backoff, spareRow.Spares)
		p := median(spareRow.Retry)
		add("Kill → killed task started again, p50", label, fmtDur(p), "≤ "+fmtDur(goalRetry), met(p <= goalRetry))
		p = median(spareRow.Full)
		add("Kill → full strength (spare promoted), p50, warm cache", label, fmtDur(p), "≤ "+fmtDur(goalFullStrength), met(p <= goalFullStrength))
	}
	if idleRow != nil {
		p := median(idleRow.Full)
		add("Kill → full strength (replacement worker ready), p50, warm cache", guestLabel(idleRow.Guest)+", idle worker killed",
			fmtDur(p), "≤ "+fmtDur(goalFullStrength), met(p <= goalFullStrength))
	}

	for _, g := range r.Options.Guests {
		if s, ok := findStartup(r, g, "warm"); ok {
			p := median(s.Times)
			add("Start-up until the first result, warm cache, p50", guestLabel(g), fmtDur(p), "≤ "+fmtDur(goalWarmStart), met(p <= goalWarmStart))
		} else {
			add("Start-up until the first result, warm cache, p50", guestLabel(g), notMeasured(r, ScenarioStartup, false), "≤ "+fmtDur(goalWarmStart), nil)
		}
	}
	for _, g := range r.Options.Guests {
		s, ok := findStartup(r, g, "cold")
		if !ok {
			if r.Failures[ScenarioStartup] != "" || !slices.Contains(r.Options.ColdGuests, g) {
				add("Cold cache: one compilation per machine, not per worker", guestLabel(g), notMeasured(r, ScenarioStartup, false), "1 per start-up", nil)
			}
			continue
		}
		one := len(s.Compiles) > 0
		for _, c := range s.Compiles {
			one = one && c == 1
		}
		add("Cold cache: one compilation per machine, not per worker", guestLabel(g),
			fmt.Sprintf("%s per start-up of %d workers", joinInts(s.Compiles), s.Workers), "1 per start-up", met(one))
	}
	for _, g := range r.Options.Guests {
		if c, ok := findChaos(r, g); ok && !c.Correct {
			add("Chaos throughput (SIGKILL every "+fmtDur(r.Options.ChaosEvery)+") ÷ calm", guestLabel(g),
				"did not complete: "+c.Detail, fmt.Sprintf("≥ %.0f%%", 100*goalChaos), met(false))
		} else if ok {
			add("Chaos throughput (SIGKILL every "+fmtDur(r.Options.ChaosEvery)+") ÷ calm", guestLabel(g),
				fmt.Sprintf("%.0f%% (%d kills)", 100*c.Ratio(), c.Kills), fmt.Sprintf("≥ %.0f%%", 100*goalChaos), met(c.Ratio() >= goalChaos && c.Correct))
		} else {
			add("Chaos throughput ÷ calm", guestLabel(g), notMeasured(r, ScenarioChaos, false), fmt.Sprintf("≥ %.0f%%", 100*goalChaos), nil)
		}
	}
	for _, g := range r.Options.Guests {
		if m, ok := findIdle(r, SysSafepool, g); ok {
			hi := slices.Max(m.KiB)
			add("Idle worker RSS", guestLabel(g), fmtKiB(hi)+" (largest worker)", "≤ 30 MB", met(hi <= goalIdleRSSKiB))
		} else {
			add("Idle worker RSS", guestLabel(g), notMeasured(r, ScenarioMemory, false), "≤ 30 MB", nil)
		}
	}

	cliGoal := fmt.Sprintf("≤ %.2f× from the smallest input to the largest", goalCLIFlat)
	sizes := cliSizes(r)
	for _, g := range r.Options.Guests {
		const name = "CLI peak RSS flat on millions of lines"
		scope := "`safepool run`, " + guestLabel(g)
		var a, z CLIRun
		ok := len(sizes) > 1
		if ok {
			var okA, okZ bool
			a, okA = findCLI(r, SysCLI, g, sizes[0])
			z, okZ = findCLI(r, SysCLI, g, sizes[len(sizes)-1])
			ok = okA && okZ && a.PeakKiB > 0 && z.PeakKiB > 0
		}
		if !ok {
			add(name, scope, notMeasured(r, ScenarioCLI, false), cliGoal, nil)
			continue
		}
		x := ratio(float64(z.PeakKiB), float64(a.PeakKiB))
		add(name, scope, fmt.Sprintf("%.2f× (%s at %s lines → %s at %s)", x, fmtKiB(a.PeakKiB), fmtCount(a.Lines), fmtKiB(z.PeakKiB), fmtCount(z.Lines)),
			cliGoal, met(x <= goalCLIFlat && a.Correct && z.Correct))
	}

	cliSpeedGoal := fmt.Sprintf("≥ %.0f× faster, peak RSS ≤ %s", goalCLIVsPython, fmtKiB(goalCLIPeakKiB))
	for _, g := range r.Options.Guests {
		name := "CLI wall time vs the Python script"
		if len(sizes) == 0 {
			add(name, "`safepool run`, "+guestLabel(g), notMeasured(r, ScenarioCLI, false), cliSpeedGoal, nil)
			continue
		}
		scope := fmt.Sprintf("`safepool run`, %s, %s lines", guestLabel(g), fmtCount(sizes[0]))
		us, okUs := findCLI(r, SysCLI, g, sizes[0])
		py, okPy := findCLI(r, SysPyCLI, "", sizes[0])
		if !okUs || !okPy || us.Elapsed <= 0 {
			add(name, scope, notMeasured(r, ScenarioCLI, !okPy), cliSpeedGoal, nil)
			continue
		}
		x := ratio(py.Elapsed.Seconds(), us.Elapsed.Seconds())
		add(name, scope, fmt.Sprintf("%.2f× (%s vs %s; peak RSS %s)", x, fmtDur(us.Elapsed), fmtDur(py.Elapsed), fmtKiB(us.PeakKiB)),
			cliSpeedGoal, met(x >= goalCLIVsPython && us.PeakKiB <= goalCLIPeakKiB && us.Correct))
	}

	ts = append(ts, metricsTargets(r)...)

	// Correctness checks of the scenarios.
	check := func(name, scope, measured, goal string, ok *bool) {
		ts = append(ts, Target{Name: name, Scope: scope, Measured: measured, Goal: goal, Met: ok, Check: true})
	}
	if s := r.Stream; s != nil {
		grow := s.PeakKiB - s.StartKiB
		check("Host RSS stays flat while Imap streams", fmt.Sprintf("%s, %s items", guestLabel(s.Guest), fmtCount(s.Items)),
			fmt.Sprintf("+%s (%s → peak %s)", fmtKiB(grow), fmtKiB(s.StartKiB), fmtKiB(s.PeakKiB)), "≤ +"+fmtKiB(goalStreamKiB), met(grow <= goalStreamKiB && s.Correct))
	} else {
		check("Host RSS stays flat while Imap streams", guestLabel(WATGuest), notMeasured(r, ScenarioMemory, false), "≤ +"+fmtKiB(goalStreamKiB), nil)
	}
	var kills []string
	killsOK := true
	for _, k := range r.Kills {
		if k.System == SysSafepool && k.Policy != "abort" {
			kills = append(kills, k.Outcome)
			killsOK = killsOK && k.Outcome == OutcomeCompleted
		}
	}
	if len(kills) > 0 {
		check("A 10-task map with a worker SIGKILLed completes", "safepool, Skip and Retry", strings.Join(kills, ", "), "completed", met(killsOK))
	} else {
		check("A 10-task map with a worker SIGKILLed completes", "safepool", notMeasured(r, ScenarioKills, false), "completed", nil)
	}
	ts = append(ts, clusterTargets(r)...)
	return ts
}

func met(b bool) *bool { return &b }

// notMeasured says why a target has no figure.
func notMeasured(r *Results, scenario string, needsPython bool) string {
	switch {
	case r.Failures[scenario] != "":
		return "scenario failed"
	case len(r.Options.Only) > 0 && !slices.Contains(r.Options.Only, scenario):
		return "not run"
	case needsPython && !r.Python.Ran:
		return "needs python3 (" + r.Python.Reason + ")"
	case needsPython:
		return "Python baseline failed"
	}
	return "not measured"
}

// vsPythonGoal is the throughput goal against Python's Pool.map for guest
// g, as a factor and as the report writes it: the Go SDK guest's is to be
// at least as fast (twice as fast is its stretch), every other guest's
// twice as fast.
func vsPythonGoal(g string) (float64, string) {
	if g == GoGuest {
		return goalVsPythonGo, fmt.Sprintf("≥ %.0f× (stretch: %.0f×)", goalVsPythonGo, goalVsPython)
	}
	return goalVsPython, fmt.Sprintf("≥ %.0f×", goalVsPython)
}

// beyondReach notes, for a goal of goalNs per task, when in-process
// wazero running the same guest with as many goroutines as the pool has
// workers (inNs per task, the same run) is already slower than the goal:
// then no pool of worker processes can meet it on this machine, whatever
// its own cost, unless the guest itself gets faster. It is "" otherwise.
func beyondReach(goalNs, inNs float64) string {
	if goalNs <= 0 || inNs <= goalNs {
		return ""
	}
	return fmt.Sprintf("; out of reach for any pool here: the goal is %.2f µs/task and in-process wazero alone takes %.2f", goalNs/1e3, inNs/1e3)
}

func guestLabel(g string) string {
	switch g {
	case GoGuest:
		return "Go guest (tasks)"
	case WATGuest:
		return "WAT guest (wsquare)"
	}
	return g
}

// scenarioRan reports whether scenario ran in r, to its end.
func scenarioRan(r *Results, scenario string) bool {
	return r.Failures[scenario] == "" && r.Options.wants(scenario)
}

// hasFreshMap reports whether r holds a FreshInstance Map row.
func hasFreshMap(r *Results) bool {
	return slices.ContainsFunc(r.Throughput, func(t Throughput) bool { return t.System == SysSafepoolFresh })
}

func findThroughput(r *Results, system, guest string) (Throughput, bool) {
	for _, t := range r.Throughput {
		if t.System == system && t.Guest == guest {
			return t, true
		}
	}
	return Throughput{}, false
}

func findLatency(r *Results, system, guest string) (Latency, bool) {
	for _, l := range r.Latency {
		if l.System == system && l.Guest == guest {
			return l, true
		}
	}
	return Latency{}, false
}

func findStartup(r *Results, guest, cache string) (Startup, bool) {
	for _, s := range r.Startup {
		if s.System == SysSafepool && s.Guest == guest && s.Cache == cache && len(s.Times) > 0 {
			return s, true
		}
	}
	return Startup{}, false
}

func findChaos(r *Results, guest string) (Chaos, bool) {
	for _, c := range r.Chaos {
		if c.Guest == guest {
			return c, true
		}
	}
	return Chaos{}, false
}

func findIdle(r *Results, system, guest string) (IdleRSS, bool) {
	for _, m := range r.IdleRSS {
		if m.System == system && m.Guest == guest && len(m.KiB) > 0 {
			return m, true
		}
	}
	return IdleRSS{}, false
}

func findCLI(r *Results, system, guest string, lines int) (CLIRun, bool) {
	for _, c := range r.CLI {
		if c.System == system && c.Guest == guest && c.Lines == lines {
			return c, true
		}
	}
	return CLIRun{}, false
}
