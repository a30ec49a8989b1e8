package pool

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"time"
)

// settle applies the policy to one ended attempt: deliver it as final,
// retry it, or abort its run. It is the dispatcher's sink. o is the
// caller's, and settle may change it: a dispatcher hands every outcome in
// one struct it fills anew, not a copy of a few hundred bytes per task.
func (p *Pool) settle(o *outcome) {
	j, res := o.job, &o.res
	r := j.run
	if r.finished() {
		return
	}
	if o.gateFailed != "" && len(j.history) > 0 {
		last := j.history[len(j.history)-1]
		p.final(j, Result{Index: j.index, Status: last.Status, Attempts: j.attempts, Stats: last.Stats,
			Error: last.Reason + "; not retried: " + o.gateFailed}, last, o.obs, o.more)
		return
	}
	j.attempts++
	res.Attempts = j.attempts
	if p.taskEvents() {
		p.emit(Event{Kind: EventTaskEnd, Time: res.Stats.End, WorkerPID: res.Stats.WorkerPID, Index: j.index, Func: r.fn,
			Attempt: j.attempts, Status: res.Status, Reason: res.Error, Stats: res.Stats, Agent: res.Stats.Agent, Host: res.Stats.Host,
			Map: r.id, ctx: r.ctx})
	}
	observed := p.records()
	dur := time.Duration(-1)
	if observed || r.tally != nil {
		dur = o.duration()
	}
	if res.Status == StatusOK {
		res.Failed = j.history
		// The attempt's end and the task's final result are one record.
		var rec *TaskRecord
		if observed {
			// Written where the driver's buffer will keep it, if it has
			// room, rather than copied there (see obsBuf.slot).
			var x TaskRecord
			rec = o.obs.slot(&x)
			fillRecord(rec, j, res, dur)
		}
		if r.deliver(res, dur, rec, o.obs, o.more) && p.taskEvents() {
			p.noteFinal(j, res, policyInherit)
		}
		return
	}
	if observed {
		r.observe(taskRecord(j, res, dur), o.obs, o.more)
	}
	if r.tally != nil {
		r.countAttempt(res.Status, dur, res.Stats.PeakMemory)
	}
	att := Attempt{Status: res.Status, Reason: res.Error, ExitCode: -1, Stats: res.Stats}
	// A worker killed by a signal may mean the machine is short of
	// memory: the retry waits at the memory gate first.
	j.gateHold = o.death != nil && o.death.Signal != "" && !o.death.Hung
	if o.death != nil {
		att.Signal = o.death.Signal
		if res.Status == StatusKilled {
			att.ExitCode = o.death.ExitCode
		}
	}
	j.history = append(j.history, att)
	if o.final {
		p.final(j, *res, att, o.obs, o.more)
		return
	}

	switch p.cfg.policyFor(res.Status) {
	case Retry:
		if why := p.noRetry(j, res.Status); why == "" {
			r.nRetried.Add(1)
			if observed {
				// The next attempt's record must not overtake this one's.
				r.flushObs(o.obs)
			}
			p.noteRetry(j, *res)
			p.retryLater(j, res.Status)
			return
		} else {
			res.Error += "; " + why
		}
	case Abort:
		p.finalOrAbort(j, *res, att, &TaskError{Index: j.index, Func: r.fn, Input: j.input, Status: res.Status, Reason: res.Error, Attempts: j.attempts}, o.obs, o.more)
		return
	}
	p.final(j, *res, att, o.obs, o.more)
}

// final delivers a failed task's last result; ob and more are the
// outcome's (see outcome.obs).
func (p *Pool) final(j *job, res Result, last Attempt, ob *obsBuf, more bool) {
	p.finalOrAbort(j, res, last, nil, ob, more)
}

// finalOrAbort delivers a failed task's last result and, with abortErr,
// aborts its run.
func (p *Pool) finalOrAbort(j *job, res Result, last Attempt, abortErr error, ob *obsBuf, more bool) {
	var kt *KilledTask
	if res.Status.IsKilledTask() {
		kt = &KilledTask{
			Index: j.index, Func: j.run.fn, Input: j.input, InputSize: len(j.input), Status: res.Status, Reason: res.Error,
			Signal: last.Signal, ExitCode: last.ExitCode, Attempts: slices.Clone(j.history),
		}
	}
	res.Output = nil
	res.Failed = j.history
	policy := finalPolicy(p.cfg.policyFor(res.Status), abortErr)
	var rec *TaskRecord
	if p.records() {
		rec = &TaskRecord{Status: res.Status, Policy: policy, Attempt: j.attempts, Index: j.index,
			WorkerPID: res.Stats.WorkerPID, Duration: -1}
	}
	if j.run.deliverOrAbort(&res, kt, abortErr, false, -1, rec, ob, more) && p.taskEvents() {
		p.noteFinal(j, &res, policy)
	}
}

// noRetry says why j must not run again, or "" when it may.
func (p *Pool) noRetry(j *job, s Status) string {
	rp := &p.cfg.Retry
	if j.attempts >= rp.MaxAttempts {
		return fmt.Sprintf("gave up after %d attempts", j.attempts)
	}
	if s == StatusMemoryLimit && rp.MemoryGrowth > 1 && j.memLimit >= rp.MaxMemory {
		return fmt.Sprintf("the memory cap is already at Retry.MaxMemory (%d bytes)", rp.MaxMemory)
	}
	return ""
}

// retryLater queues j again after its backoff, with a larger memory cap if
// it hit the cap, and after the memory gate if a signal killed its worker.
func (p *Pool) retryLater(j *job, s Status) {
	rp := &p.cfg.Retry
	if s == StatusMemoryLimit {
		grown := int64(float64(j.memLimit) * rp.MemoryGrowth)
		j.memLimit = min(max(grown, j.memLimit), rp.MaxMemory)
	}
	delay := min(rp.Backoff<<min(j.attempts-1, 20), rp.MaxBackoff)
	// Jitter: wait between half and all of the delay, so that tasks killed
	// together do not come back together.
	delay = delay/2 + rand.N(delay/2+1)
	// On a cluster, the agent that runs the retry checks its own machine.
	gate := s == StatusKilled && j.gateHold && rp.MinAvailable > 0 && p.cfg.Cluster == ""
	time.AfterFunc(delay, func() {
		if j.run.finished() {
			return
		}
		if gate {
			if err := waitMemory(j.run, rp.MinAvailable, rp.GateTimeout); err != nil {
				last := j.history[len(j.history)-1]
				res := Result{Index: j.index, Status: StatusKilled, Attempts: j.attempts, Stats: last.Stats,
					Error: last.Reason + "; not retried: " + err.Error()}
				p.final(j, res, last, nil, false)
				return
			}
		}
		p.q.push(j)
	})
}

// memAvailable reads MemAvailable from /proc/meminfo, in bytes. It is a
// variable so that tests can stand in a machine that is short of memory.
var memAvailable = func() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Bytes()
		if v, ok := bytes.CutPrefix(line, []byte("MemAvailable:")); ok {
			fields := bytes.Fields(v)
			if len(fields) == 0 {
				break
			}
			kb, err := strconv.ParseInt(string(fields[0]), 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("MemAvailable not found in /proc/meminfo")
}

// waitMemory waits until MemAvailable is at least min bytes, for at most
// timeout, or until the run ends.
func waitMemory(r *run, min int64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		avail, err := memAvailable()
		if err != nil {
			return fmt.Errorf("memory gate: %w", err)
		}
		if avail >= min {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("memory gate: MemAvailable stayed at %d bytes, below %d, for %s", avail, min, timeout)
		case <-r.done:
			return fmt.Errorf("memory gate: the map ended")
		case <-tick.C:
		}
	}
}
