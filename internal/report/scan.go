package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// Bounds that keep a report's memory and size flat whatever the run's
// length.
const (
	maxWorkers    = 50_000 // distinct (agent, pid) pairs tracked; more share the last lane
	maxLanes      = 64     // lanes drawn; more workers at once overlap in the last
	maxWideBars   = 100_000
	maxMarks      = 2_000 // kill and restart marks, and retry links, each
	maxKilledRows = 200
	histBuckets   = 40 // four per decade from 1 µs
	plotWidth     = 1200
)

type workerKey struct {
	agent string
	pid   int
}

// span is one worker process's part of the run.
type span struct {
	first, last time.Time
	tasks       int
	lane        int
}

// summary is what the first pass learns.
type summary struct {
	t0, t1    time.Time
	records   int
	byStatus  map[string]int
	attempts  int // ran attempts, earlier ones included
	retried   int // tasks that ran more than once
	unrun     int // records without times (not run, bad input)
	badLines  int
	kills     int // attempts that ended killed or timeout
	workers   map[workerKey]*span
	overflow  bool // more workers than maxWorkers
	hist      [histBuckets]int
	killedIdx []int // the first killed tasks, when there is no --killed file
	agents    bool
}

// forEach streams the stats file at path, calling fn for each record.
// Lines that are not records are counted, not fatal.
func forEach(path string, fn func(*Record)) (bad int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return decode(f, fn)
}

func decode(r io.Reader, fn func(*Record)) (bad int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var rec Record
	for sc.Scan() {
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		rec = Record{Earlier: rec.Earlier[:0]}
		if json.Unmarshal(line, &rec) != nil {
			bad++
			continue
		}
		fn(&rec)
	}
	return bad, sc.Err()
}

// scanStats is the first pass.
func scanStats(path string) (*summary, error) {
	s := &summary{byStatus: map[string]int{}, workers: map[workerKey]*span{}}
	bad, err := forEach(path, func(r *Record) {
		s.records++
		s.byStatus[r.Status]++
		if r.Attempts > 1 {
			s.retried++
		}
		if r.Agent != "" {
			s.agents = true
		}
		if isKill(r.Status) && len(s.killedIdx) < maxKilledRows {
			s.killedIdx = append(s.killedIdx, r.Index)
		}
		ran := false
		r.attempts(func(a attempt) {
			ran = true
			s.add(a)
		})
		if !ran {
			s.unrun++
		}
	})
	if err != nil {
		return nil, fmt.Errorf("report: read %s: %w", path, err)
	}
	s.badLines = bad
	return s, nil
}

func (s *summary) add(a attempt) {
	s.attempts++
	if isKill(a.status) {
		s.kills++
	}
	if s.t0.IsZero() || a.start.Before(s.t0) {
		s.t0 = a.start
	}
	if a.end.After(s.t1) {
		s.t1 = a.end
	}
	s.hist[bucket(a.end.Sub(a.start))]++
	k := workerKey{a.agent, a.pid}
	w := s.workers[k]
	if w == nil {
		if len(s.workers) >= maxWorkers {
			s.overflow = true
			return
		}
		w = &span{first: a.start, last: a.end}
		s.workers[k] = w
	}
	if a.start.Before(w.first) {
		w.first = a.start
	}
	if a.end.After(w.last) {
		w.last = a.end
	}
	w.tasks++
}

// bucket is d's histogram bucket: four per decade from 1 µs.
func bucket(d time.Duration) int {
	sec := d.Seconds()
	if sec <= 1e-6 {
		return 0
	}
	b := int(math.Floor((math.Log10(sec) + 6) * 4))
	return min(max(b, 0), histBuckets-1)
}

// bucketLow is the lower bound of bucket b, in seconds.
func bucketLow(b int) float64 { return math.Pow(10, float64(b)/4-6) }

func isKill(status string) bool {
	return status == "killed" || status == "timeout" || status == "memory_limit"
}

// lane is one row of the timeline: the workers that ran one after
// another in one slot of one agent.
type lane struct {
	agent string
	pids  []int
	first []time.Time // when each pid's first attempt started
	last  time.Time
}

// assignLanes packs the workers into lanes: a worker that started after
// another ended takes its lane (the one that ended last before it, which
// is where the worker it replaced ran), so that a restart shows as a new
// PID in the same lane.
func (s *summary) assignLanes() []lane {
	keys := make([]workerKey, 0, len(s.workers))
	for k := range s.workers {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b workerKey) int {
		if c := strings.Compare(a.agent, b.agent); c != 0 {
			return c
		}
		return s.workers[a].first.Compare(s.workers[b].first)
	})
	var lanes []lane
	from := 0 // the first lane of the current agent
	for i, k := range keys {
		if i > 0 && k.agent != keys[i-1].agent {
			from = len(lanes)
		}
		w := s.workers[k]
		best := -1
		for j := from; j < len(lanes); j++ {
			if !lanes[j].last.After(w.first) && (best < 0 || lanes[j].last.After(lanes[best].last)) {
				best = j
			}
		}
		if best < 0 && len(lanes) < maxLanes {
			lanes = append(lanes, lane{agent: k.agent})
			best = len(lanes) - 1
		}
		if best < 0 && from >= len(lanes) { // out of lanes for a new agent
			best = len(lanes) - 1
		}
		if best < 0 { // out of lanes: overlap in the one that ends first
			best = from
			for j := from; j < len(lanes); j++ {
				if lanes[j].last.Before(lanes[best].last) {
					best = j
				}
			}
		}
		l := &lanes[best]
		l.pids = append(l.pids, k.pid)
		l.first = append(l.first, w.first)
		if w.last.After(l.last) {
			l.last = w.last
		}
		w.lane = best
	}
	return lanes
}
