package harness

import (
	"fmt"
	"strings"
	"time"
)

// Goals of the cluster's targets.
const (
	goalClusterThroughput = 0.80 // "embedded" ÷ the local pool, WAT guest
	goalAgentAdvisory     = 50 * time.Millisecond
	goalAgentHeartbeat    = time.Second
)

// clusterTargets are the cluster's rows of the targets table.
func clusterTargets(r *Results) []Target {
	var ts []Target
	add := func(name, scope, measured, goal string, met *bool) {
		ts = append(ts, Target{Name: name, Scope: scope, Measured: measured, Goal: goal, Met: met})
	}
	cr := r.Cluster
	name := "Cluster \"embedded\" ÷ local pool throughput"
	goal := fmt.Sprintf("≥ %.0f%%", 100*goalClusterThroughput)
	local, ok1 := findClusterThroughput(cr, ClusterLocal, WATGuest)
	emb, ok2 := findClusterThroughput(cr, ClusterEmbedded, WATGuest)
	if ok1 && ok2 {
		x := ratio(local.NsPerTask(), emb.NsPerTask())
		add(name, guestLabel(WATGuest), fmt.Sprintf("%.0f%% (%.2f vs %.2f µs/task)", 100*x, emb.NsPerTask()/1e3, local.NsPerTask()/1e3), goal, met(x >= goalClusterThroughput))
	} else {
		add(name, guestLabel(WATGuest), notMeasured(r, ScenarioCluster, false), goal, nil)
	}
	name = "Cluster, 3 agent processes ÷ local pool throughput"
	three, ok3 := findClusterThroughput(cr, ClusterThree, WATGuest)
	if ok1 && ok3 {
		x := ratio(local.NsPerTask(), three.NsPerTask())
		add(name, guestLabel(WATGuest), fmt.Sprintf("%.0f%% (%.2f vs %.2f µs/task)", 100*x, three.NsPerTask()/1e3, local.NsPerTask()/1e3), goal, met(x >= goalClusterThroughput))
	} else {
		add(name, guestLabel(WATGuest), notMeasured(r, ScenarioCluster, false), goal, nil)
	}
	for _, row := range []struct {
		kill string
		goal time.Duration
	}{{clusterKillAdvisory, goalAgentAdvisory}, {clusterKillHeartbeat, goalAgentHeartbeat}} {
		name := "Agent SIGKILL → its tasks' retries started, p50 (" + row.kill + ")"
		rec, ok := findClusterRecovery(cr, "agent process", row.kill)
		if ok {
			add(name, "cluster", fmtDur(rec.P50), "≤ "+fmtDur(row.goal), met(rec.P50 <= row.goal))
			add("Agent SIGKILL mid-map under retry ("+row.kill+"): every map whole, results ok and in order", "cluster",
				fmt.Sprintf("%s (%d maps with a kill)", yesNo(rec.Correct), len(rec.Detect)), "yes", met(rec.Correct))
		} else {
			add(name, "cluster", notMeasured(r, ScenarioCluster, false), "≤ "+fmtDur(row.goal), nil)
		}
	}
	name = "Cluster coordinator RSS growth while Imap streams, agents in processes of their own"
	g := "≤ " + fmtKiB(goalStreamKiB)
	if s := cr.Coordinator(); s != nil && s.Correct {
		grew := s.PeakKiB - s.StartKiB
		add(name, fmtCount(s.Items)+" items", fmt.Sprintf("%s (%s → %s)", fmtKiB(grew), fmtKiB(s.StartKiB), fmtKiB(s.PeakKiB)), g, met(grew <= goalStreamKiB))
	} else {
		add(name, "cluster", notMeasured(r, ScenarioCluster, false), g, nil)
	}
	return ts
}

// How an agent's loss is noticed, as ClusterRecovery.Kill names it.
const (
	clusterKillAdvisory  = "through the disconnect advisory"
	clusterKillHeartbeat = "through missed heartbeats, advisory ignored"
)

func findClusterThroughput(cr *ClusterResults, system, guest string) (Throughput, bool) {
	if cr != nil {
		for _, t := range cr.Throughput {
			if t.System == system && t.Guest == guest {
				return t, true
			}
		}
	}
	return Throughput{}, false
}

// Coordinator is the stream measured with agents in processes of their
// own, if any.
func (cr *ClusterResults) Coordinator() *ClusterStream {
	if cr == nil {
		return nil
	}
	return cr.CoordinatorStream
}

// findClusterRecovery finds the recovery row whose Kill has every one of
// words.
func findClusterRecovery(cr *ClusterResults, words ...string) (ClusterRecovery, bool) {
	if cr != nil {
	next:
		for _, rec := range cr.Recovery {
			for _, w := range words {
				if !strings.Contains(rec.Kill, w) {
					continue next
				}
			}
			if len(rec.Samples) > 0 {
				return rec, true
			}
		}
	}
	return ClusterRecovery{}, false
}

// cluster is the cluster's section of the report.
func (p *report) cluster() {
	r := p.r
	p.f("%s\n\n", clusterSection)
	cr := r.Cluster
	if p.skipped(ScenarioCluster, cr == nil || (len(cr.Throughput) == 0 && len(cr.Latency) == 0)) {
		return
	}
	p.f("The local pool beside the same pool on a cluster, %d workers each, on this machine. ", r.Options.Workers)
	p.f("\"embedded\" runs a NATS JetStream server and an agent inside the pool's own process, which then competes with the workers for the cores; ")
	p.f("\"host CPU\" is that process's CPU time (coordinator, server and agent together).\n\n")
	var rows [][]string
	for _, t := range cr.Throughput {
		vs := "—"
		if l, ok := findClusterThroughput(cr, ClusterLocal, t.Guest); ok {
			vs = fmt.Sprintf("%.0f%%", 100*ratio(l.NsPerTask(), t.NsPerTask()))
		}
		rows = append(rows, []string{t.System, guestLabel(t.Guest), fmtCount(t.Tasks), fmtDur(t.Elapsed), fmtUs(t.NsPerTask()),
			cpuPerTask(t.HostCPU, t.Tasks), cpuPerTask(t.WorkerCPU, t.Tasks), vs, yesNo(t.Correct)})
	}
	if len(rows) > 0 {
		p.f("Throughput (square, best of %d runs taking turns):\n\n", r.Options.Rounds)
		table(p.w, []string{"system", "guest", "tasks", "wall", "µs/task", "host CPU µs/task", "worker CPU µs/task", "÷ local throughput", "all correct"}, rows)
	}
	rows = nil
	for _, l := range cr.Latency {
		rows = append(rows, []string{l.System, guestLabel(l.Guest), fmtCount(l.Samples), fmtDur(l.P50), fmtDur(l.P99), fmtDur(l.Max)})
	}
	if len(rows) > 0 {
		p.f("Apply of square(7), one at a time:\n\n")
		table(p.w, []string{"system", "guest", "samples", "p50", "p99", "max"}, rows)
	}
	rows = nil
	for _, rec := range cr.Recovery {
		detect, done, correct := "—", "—", "—"
		if len(rec.Detect) > 0 {
			detect = fmtDur(rec.DetectP50) + " / " + fmtDur(rec.DetectMax)
			done = fmtDur(rec.DoneP50) + " / " + fmtDur(rec.DoneMax)
			correct = yesNo(rec.Correct)
		}
		rows = append(rows, []string{rec.Kill, fmtCount(len(rec.Samples)), fmtDur(rec.P50), fmtDur(rec.Max), detect, done, correct})
	}
	if len(rows) > 0 {
		p.f("From a SIGKILL to the start event of the killed task's retry (for an agent: the lone task of a map, started again on another agent while the others are idle), to the pool presuming the agent dead, and (for an agent running a task of a map of 12 tasks of 300 ms) to the map's last result:\n\n")
		table(p.w, []string{"what was killed", "kills", "retry p50", "retry max", "presumed dead p50 / max", "map done p50 / max", "maps whole, in order"}, rows)
	}
	if s := cr.Stream; s != nil {
		p.f("Imap of %s items (window %d) on %s took %s: the pool's process went from %s of RSS after its start to a sampled peak of %s (the in-process server and agent included); all correct: %s.\n\n",
			fmtCount(s.Items), r.Options.StreamWindow, s.System, fmtDur(s.Elapsed), fmtKiB(s.StartKiB), fmtKiB(s.PeakKiB), yesNo(s.Correct))
	}
	if s := cr.Coordinator(); s != nil {
		p.f("Imap of %s items (window %d) on %s took %s: the pool's process, the coordinator alone (server and agents are processes of their own), went from %s of RSS after its start to a sampled peak of %s; all correct: %s.\n\n",
			fmtCount(s.Items), r.Options.StreamWindow, s.System, fmtDur(s.Elapsed), fmtKiB(s.StartKiB), fmtKiB(s.PeakKiB), yesNo(s.Correct))
	}
	for _, n := range cr.Notes {
		p.f("- %s\n", n)
	}
	p.f("\n")
}

const clusterSection = "## 11. The cluster"
