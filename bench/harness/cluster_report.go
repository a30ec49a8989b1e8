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
	for _, row := range []struct {
		kill string
		goal time.Duration
	}{{clusterKillAdvisory, goalAgentAdvisory}, {clusterKillHeartbeat, goalAgentHeartbeat}} {
		name := "Agent SIGKILL → its tasks' retries started, p50 (" + row.kill + ")"
		if rec, ok := findClusterRecovery(cr, row.kill); ok {
			add(name, "cluster", fmtDur(rec.P50), "≤ "+fmtDur(row.goal), met(rec.P50 <= row.goal))
		} else {
			add(name, "cluster", notMeasured(r, ScenarioCluster, false), "≤ "+fmtDur(row.goal), nil)
		}
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

func findClusterRecovery(cr *ClusterResults, kill string) (ClusterRecovery, bool) {
	if cr != nil {
		for _, rec := range cr.Recovery {
			if strings.Contains(rec.Kill, kill) && len(rec.Samples) > 0 {
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
		rows = append(rows, []string{rec.Kill, fmtCount(len(rec.Samples)), fmtDur(rec.P50), fmtDur(rec.Max)})
	}
	if len(rows) > 0 {
		p.f("From a SIGKILL to the start event of the killed task's retry:\n\n")
		table(p.w, []string{"what was killed", "kills", "p50", "max"}, rows)
	}
	if s := cr.Stream; s != nil {
		p.f("Imap of %s items (window %d) on %s took %s: the pool's process went from %s of RSS after its start to a sampled peak of %s (the in-process server and agent included); all correct: %s.\n\n",
			fmtCount(s.Items), r.Options.StreamWindow, s.System, fmtDur(s.Elapsed), fmtKiB(s.StartKiB), fmtKiB(s.PeakKiB), yesNo(s.Correct))
	}
	for _, n := range cr.Notes {
		p.f("- %s\n", n)
	}
	p.f("\n")
}

const clusterSection = "## 11. The cluster"
