package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"time"
	"unicode/utf8"

	"github.com/safepool/safepool/pool"
)

// resultRecord is one line of --out.
type resultRecord struct {
	Index    int             `json:"index"`
	Status   string          `json:"status"`
	Output   json.RawMessage `json:"output"`
	Error    string          `json:"error"`
	Attempts int             `json:"attempts"`
}

// killedRecord is one line of --killed.
type killedRecord struct {
	Index    int             `json:"index"`
	Input    json.RawMessage `json:"input"`
	Status   string          `json:"status"`
	Reason   string          `json:"reason"`
	Attempts int             `json:"attempts"`
}

// statsRecord is one line of --stats.
type statsRecord struct {
	Index       int    `json:"index"`
	Start       string `json:"start"`
	End         string `json:"end"`
	WorkerPID   int    `json:"worker_pid"`
	Attempts    int    `json:"attempts"`
	PeakMemory  int64  `json:"peak_memory"`
	MemoryLimit int64  `json:"memory_limit"`
	Status      string `json:"status"`
}

// timeLayout is RFC 3339 with nanoseconds, fixed width so that the lines
// sort as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// jsonValue returns b as a JSON value: b itself if it is valid JSON in
// UTF-8, a JSON string of it otherwise, and null if it is empty.
func jsonValue(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	if json.Valid(b) && utf8.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b)) // cannot fail: invalid UTF-8 becomes U+FFFD
	return s
}

func newResultRecord(r pool.Result) resultRecord {
	return resultRecord{Index: r.Index, Status: r.Status.String(), Output: jsonValue(r.Output), Error: r.Error, Attempts: r.Attempts}
}

func newKilledRecord(kt pool.KilledTask) killedRecord {
	return killedRecord{Index: kt.Index, Input: jsonValue(kt.Input), Status: kt.Status.String(), Reason: kt.Reason, Attempts: len(kt.Attempts)}
}

func newStatsRecord(r pool.Result) statsRecord {
	return statsRecord{
		Index: r.Index, Start: stamp(r.Stats.Start), End: stamp(r.Stats.End), WorkerPID: r.Stats.WorkerPID,
		Attempts: r.Attempts, PeakMemory: r.Stats.PeakMemory, MemoryLimit: r.Stats.MemoryLimit, Status: r.Status.String(),
	}
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

// sink is an output file of JSON Lines: stdout, or a file created up front
// so that a path that cannot be written fails before any task runs.
type sink struct {
	name string
	f    *os.File // nil for stdout
	w    *bufio.Writer
	enc  *json.Encoder
}

// openSink opens path for writing, or w when path is empty. flag names the
// flag the path came from, for messages.
func openSink(path, flag string, w io.Writer) (*sink, error) {
	s := &sink{name: "stdout"}
	if path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, usageErrorf("%s: %v; pass a path in a directory you can write to", flag, err)
		}
		s.f, s.name, w = f, path, f
	}
	s.w = bufio.NewWriterSize(w, 64<<10)
	s.enc = json.NewEncoder(s.w)
	s.enc.SetEscapeHTML(false)
	return s, nil
}

// write encodes v as one line.
func (s *sink) write(v any) error {
	if err := s.enc.Encode(v); err != nil {
		return failedErrorf("write %s: %v", s.name, err)
	}
	return nil
}

// close flushes and closes the sink. It is safe on a nil sink.
func (s *sink) close() error {
	if s == nil {
		return nil
	}
	err := s.w.Flush()
	if s.f != nil {
		if cerr := s.f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return failedErrorf("write %s: %v", s.name, err)
	}
	return nil
}

// sinks are the outputs of one run; killed and stats are nil unless asked
// for.
type sinks struct {
	out, killed, stats *sink
}

func openSinks(o *runOptions, stdout io.Writer) (*sinks, error) {
	var s sinks
	var err error
	if s.out, err = openSink(o.out, "--out", stdout); err != nil {
		return nil, err
	}
	if o.killed != "" {
		if s.killed, err = openSink(o.killed, "--killed", nil); err != nil {
			s.close()
			return nil, err
		}
	}
	if o.stats != "" {
		if s.stats, err = openSink(o.stats, "--stats", nil); err != nil {
			s.close()
			return nil, err
		}
	}
	return &s, nil
}

// writeAll writes the records of a run. An aborted run's unfinished tasks
// are written with status not_run.
func (s *sinks) writeAll(results []pool.Result, killed []pool.KilledTask) error {
	for _, r := range results {
		if r.Status == 0 {
			continue
		}
		if err := s.out.write(newResultRecord(r)); err != nil {
			return err
		}
		if s.stats != nil {
			if err := s.stats.write(newStatsRecord(r)); err != nil {
				return err
			}
		}
	}
	if s.killed != nil {
		for _, kt := range killed {
			if err := s.killed.write(newKilledRecord(kt)); err != nil {
				return err
			}
		}
	}
	return nil
}

// close closes every sink and returns the first error.
func (s *sinks) close() error {
	var first error
	for _, k := range []*sink{s.out, s.killed, s.stats} {
		if err := k.close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
