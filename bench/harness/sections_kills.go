package harness

import (
	"fmt"
	"strings"
)

// The report's sections on lost tasks: the kill matrix and the memory
// budget.

func (p *report) kills() {
	r := p.r
	p.f("%s\n\n", Sections[7])
	if p.skipped(ScenarioKills, len(r.Kills) == 0) {
		return
	}
	p.f("A map of %d slow squares on %d workers, chunk size 1 where a pool has one; a real SIGKILL (`kill(2)`) hits the worker running task %d, sent when that task starts ", killTasks, r.Options.Workers, killVictim)
	p.f("(safepool: from `OnEvent`'s `EventTaskStart`, 30 ms per task, Go guest; Python: each task writes its index and pid to a file as it starts and sleeps 100 ms, and the script kills the pid it read). ")
	p.f("A Python pool's map is given %s after the kill before it is called **hung**; safepool's is given %s from its start. ", fmtDur(r.Options.HangTimeout), fmtDur(safepoolBound))
	p.f("**failed** means the call raised, or tasks other than the killed one lost their results. \"Says which task\" means the caller is told which task was lost, and only that one. \"Afterwards\" is one more task on the same pool.\n\n")
	p.killTable(r.Kills)
	p.peersNote(ScenarioKills)
}

func (p *report) oom() {
	r := p.r
	p.f("%s\n\n", Sections[9])
	if p.skipped(ScenarioOOM, len(r.OOM) == 0) {
		return
	}
	b := r.Options.MemoryBudgetMiB
	p.f("The same map, with task %d allocating %d MiB (three times a budget of %d MiB) and task i allocating i MiB otherwise, each returning what it allocated; every page is written. ", killVictim, 3*b, b)
	p.f("safepool: `Config.MemoryLimit` of %d MiB on each task's linear memory, under Skip and under Retry, whose `Retry.MemoryGrowth` (×2 by default) runs the task again with a larger cap. ", b)
	p.f("Python: **rlimit**, RLIMIT_AS set by the task in its worker to the worker's address space plus %d MiB, so the allocation fails; ", b)
	p.f("**rss**, a watchdog in the calling process that reads each worker's VmRSS every millisecond and SIGKILLs one that has grown %d MiB past what it had when first seen: what the OOM killer does to a process over a cgroup's limit.\n\n", b)
	p.killTable(r.OOM)
	p.peersNote(ScenarioOOM)
}

func (p *report) killTable(rows []KillRow) {
	var out [][]string
	for _, k := range rows {
		system := k.System
		if k.Policy != "" {
			system += ", " + k.Policy
		}
		if k.Mode != "" {
			system += " (" + k.Mode + ")"
		}
		outcome := k.Outcome
		if k.Outcome != OutcomeCompleted {
			outcome = "**" + k.Outcome + "**"
		}
		inOrder := "—"
		if k.OK > 0 {
			inOrder = yesNo(k.InOrder)
		}
		out = append(out, []string{system, oneLine(k.Kill), outcome, fmt.Sprintf("%d of %d", k.OK, k.Tasks), inOrder, yesNo(k.Retried), yesNo(k.Named),
			oneLine(dash(k.After)), fmtDur(k.Elapsed), oneLine(k.Detail)})
	}
	table(p.w, []string{"system", "what stopped the task", "the map", "results", "in input order", "lost task retried", "says which task", "afterwards", "wall", "what happened"}, out)
}

// peersLine is the header's line about the peers.
func (p *report) peersLine() string {
	pi := p.r.Peers
	var parts []string
	for _, name := range Peers {
		if v, ok := pi.Versions[name]; ok {
			parts = append(parts, name+" "+v)
		} else {
			parts = append(parts, "**"+name+" missing**")
		}
	}
	s := strings.Join(parts, ", ")
	if pi.Python != "" {
		s += fmt.Sprintf(", on %s (Python %s), the interpreter that imports them; it also runs the standard library's pools in sections 7 and 9", pi.Python, pi.Version)
	}
	return s
}

// peersNote says which peers did not run, and why.
func (p *report) peersNote(scenario string) {
	for _, name := range p.r.Peers.missingPeers() {
		p.f("- **%s did not run:** %s.\n", name, oneLine(p.r.Peers.Missing[name]))
	}
	if msg := p.r.Failures[scenario+"/peers"]; msg != "" {
		p.f("\n**The peers failed:** `%s`\n", oneLine(msg))
	}
	p.f("\n")
}
