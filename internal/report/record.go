package report

import (
	"time"

	"github.com/safepool/safepool/pool"
)

// Record is one line of a --stats file: the final attempt of one task,
// and the attempts before it that failed.
type Record struct {
	Index       int       `json:"index"`
	Start       string    `json:"start"`
	End         string    `json:"end"`
	WorkerPID   int       `json:"worker_pid"`
	Agent       string    `json:"agent,omitempty"` // the cluster agent that ran it, if any
	Host        string    `json:"host,omitempty"`
	Attempts    int       `json:"attempts"`
	PeakMemory  int64     `json:"peak_memory"`
	MemoryLimit int64     `json:"memory_limit"`
	Status      string    `json:"status"`
	Earlier     []Earlier `json:"earlier_attempts,omitempty"`
}

// Earlier is one attempt of a task before its last: one that failed and
// was retried.
type Earlier struct {
	Start     string `json:"start"`
	End       string `json:"end"`
	WorkerPID int    `json:"worker_pid"`
	Agent     string `json:"agent,omitempty"`
	Host      string `json:"host,omitempty"`
	Status    string `json:"status"`
	Signal    string `json:"signal,omitempty"`
}

// TimeLayout is how a stats file writes times: RFC 3339 with nanoseconds,
// fixed width, in UTC.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimeLayout)
}

// RecordOf makes the stats record of a task's final result. Programs that
// use the pool directly (such as the seed example) write these to render a
// report; the command writes the same lines itself.
func RecordOf(res pool.Result) Record {
	s := res.Stats
	r := Record{
		Index: res.Index, Start: stamp(s.Start), End: stamp(s.End), WorkerPID: s.WorkerPID, Attempts: res.Attempts,
		PeakMemory: s.PeakMemory, MemoryLimit: s.MemoryLimit, Status: res.Status.String(),
	}
	for i, a := range res.Failed {
		if i >= res.Attempts-1 {
			break // the last attempt is the record's own
		}
		r.Earlier = append(r.Earlier, Earlier{Start: stamp(a.Stats.Start), End: stamp(a.Stats.End),
			WorkerPID: a.Stats.WorkerPID, Status: a.Status.String(), Signal: a.Signal})
	}
	return r
}

// attempt is one bar: a task's attempt on a worker.
type attempt struct {
	index      int
	n          int // 1 for the first attempt
	start, end time.Time
	pid        int
	agent      string
	status     string
}

// attempts calls fn for each attempt of r that ran (has a start and an
// end), earliest first.
func (r *Record) attempts(fn func(a attempt)) {
	for i, e := range r.Earlier {
		if a, ok := parseAttempt(r.Index, i+1, e.Start, e.End, e.WorkerPID, e.Agent, e.Status); ok {
			fn(a)
		}
	}
	if a, ok := parseAttempt(r.Index, max(r.Attempts, 1), r.Start, r.End, r.WorkerPID, r.Agent, r.Status); ok {
		fn(a)
	}
}

func parseAttempt(index, n int, start, end string, pid int, agent, status string) (attempt, bool) {
	if start == "" || end == "" {
		return attempt{}, false
	}
	s, err1 := time.Parse(time.RFC3339Nano, start)
	e, err2 := time.Parse(time.RFC3339Nano, end)
	if err1 != nil || err2 != nil {
		return attempt{}, false
	}
	if e.Before(s) {
		e = s
	}
	return attempt{index: index, n: n, start: s, end: e, pid: pid, agent: agent, status: status}, true
}
