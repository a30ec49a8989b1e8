package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
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

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

var jsonNull = json.RawMessage("null")

// outputValue returns a task's output as the JSON value --out holds, on
// one line, or why it cannot be written. Under base64 it is a string of
// the bytes' base64. Under JSON it is the output itself, compacted, when
// that is JSON; a string of it when it is other UTF-8 text; and null when
// it is empty. Bytes that are not UTF-8 cannot be carried without changing
// them, so they are refused rather than mangled into U+FFFD.
func outputValue(b []byte, enc encoding) (json.RawMessage, string) {
	if enc == encodingBase64 {
		return base64String(b), ""
	}
	switch {
	case len(b) == 0:
		return jsonNull, ""
	case plainInt(b):
		return b, "" // the common case, checked without the JSON scanner
	case !utf8.Valid(b):
		return jsonNull, fmt.Sprintf("the task succeeded, but its output (%d bytes) is not valid UTF-8, which JSON cannot carry unchanged; run with --encoding base64 to get the bytes", len(b))
	case !bytes.ContainsAny(b, " \t\r\n"):
		if json.Valid(b) {
			return b, ""
		}
	default:
		// Compact checks the JSON as it goes: one pass, not two.
		var c bytes.Buffer
		if json.Compact(&c, b) == nil {
			return c.Bytes(), ""
		}
	}
	s, _ := json.Marshal(string(b)) // cannot fail: b is UTF-8
	return s, ""
}

// inputValue returns a task's input as the JSON value --killed holds, in
// the form the input line had, so that it can be run again.
func inputValue(b []byte, enc encoding) json.RawMessage {
	if enc == encodingBase64 {
		return base64String(b)
	}
	return b // the line itself: valid JSON in UTF-8
}

func base64String(b []byte) json.RawMessage {
	s := make([]byte, 0, base64.StdEncoding.EncodedLen(len(b))+2)
	s = append(s, '"')
	s = base64.StdEncoding.AppendEncode(s, b)
	return append(s, '"')
}

// record is everything written for one slot: its line in --out and, when
// asked for, in --stats and --killed.
//
// A record of many slots has a tally, which counts them; a record of one
// slot says what it is in its other fields.
type record struct {
	status   pool.Status // as written
	bad      bool        // a bad input line
	notUTF8  bool        // an output refused by outputValue
	attempts int
	out      []byte
	stats    []byte // nil without --stats
	killed   []byte // nil without --killed, or for a task that was not killed
	tally    *tally
}

// encoder makes the lines of records.
type encoder struct {
	enc          encoding
	stats, kills bool // whether --stats and --killed are written
	buf          bytes.Buffer
	json         *json.Encoder
}

func newEncoder(o *runOptions) *encoder {
	e := &encoder{enc: o.encoding, stats: o.stats != "", kills: o.killed != ""}
	e.json = json.NewEncoder(&e.buf)
	e.json.SetEscapeHTML(false)
	return e
}

// line encodes v as one line of JSON. RawMessage fields are compacted, so
// an output with new lines in it still takes one line.
func (e *encoder) line(v any) []byte {
	e.buf.Reset()
	if err := e.json.Encode(v); err != nil {
		// Only a RawMessage that is not JSON can fail, and outputValue and
		// inputValue give none.
		panic(fmt.Sprintf("safepool: encoding a record: %v", err))
	}
	return bytes.Clone(e.buf.Bytes())
}

// task makes the record of a task that ran: in is its input, index its
// slot.
func (e *encoder) task(index int, in []byte, res pool.Result) record {
	var rec record
	e.appendTask(&rec, index, in, res)
	return rec
}

// appendTask appends the lines of a task that ran to rec's, and counts it
// in rec.tally when rec has one (a record of many tasks); without one it
// sets rec's status and attempts. Its --out and --stats lines are written
// by hand, the same as line would write them, because they are the run's
// hot path: reflection made them most of the CLI's own work on a fast
// task.
func (e *encoder) appendTask(rec *record, index int, in []byte, res pool.Result) {
	var output json.RawMessage = jsonNull
	var problem string
	if res.Status == pool.StatusOK {
		output, problem = outputValue(res.Output, e.enc)
	}
	st := res.Status
	errText := res.Error
	if problem != "" {
		st, errText = pool.StatusError, problem
	}
	if rec.tally != nil {
		rec.tally.add(st, res.Attempts, false, problem != "")
	} else {
		rec.status, rec.attempts, rec.notUTF8 = st, res.Attempts, problem != ""
	}
	status := okName // nearly every task: no map lookup in String
	if st != pool.StatusOK {
		status = st.String()
	}

	b := rec.out
	if b == nil {
		b = make([]byte, 0, 64+len(output)+len(errText))
	}
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, int64(index), 10)
	b = append(b, `,"status":"`...)
	b = append(b, status...)
	b = append(b, `","output":`...)
	b = append(b, output...) // compact: see outputValue
	b = append(b, `,"error":`...)
	b = e.appendString(b, errText)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(res.Attempts), 10)
	rec.out = append(b, "}\n"...)

	if e.stats {
		s := res.Stats
		b := rec.stats
		if b == nil {
			b = make([]byte, 0, 192)
		}
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, int64(index), 10)
		b = append(b, `,"start":"`...)
		b = appendStamp(b, s.Start)
		b = append(b, `","end":"`...)
		b = appendStamp(b, s.End)
		b = append(b, `","worker_pid":`...)
		b = strconv.AppendInt(b, int64(s.WorkerPID), 10)
		b = appendAgent(b, s)
		b = append(b, `,"attempts":`...)
		b = strconv.AppendInt(b, int64(res.Attempts), 10)
		b = append(b, `,"peak_memory":`...)
		b = strconv.AppendInt(b, s.PeakMemory, 10)
		b = append(b, `,"memory_limit":`...)
		b = strconv.AppendInt(b, s.MemoryLimit, 10)
		b = append(b, `,"status":"`...)
		b = append(b, status...)
		b = append(b, '"')
		b = appendEarlier(b, res)
		rec.stats = append(b, "}\n"...)
	}
	if e.kills && res.Status.IsKilledTask() {
		rec.killed = append(rec.killed, e.line(killedRecord{Index: index, Input: inputValue(in, e.enc), Status: res.Status.String(), Reason: res.Error, Attempts: res.Attempts})...)
	}
}

// okName is pool.StatusOK's name, looked up once.
var okName = pool.StatusOK.String()

// appendStamp appends stamp(t) without making a string.
func appendStamp(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	return t.UTC().AppendFormat(b, timeLayout)
}

// appendAgent appends the cluster agent and host that ran an attempt, for
// a run on a cluster (--nats); a local run has neither field.
func appendAgent(b []byte, s pool.Stats) []byte {
	if s.Agent != "" {
		b = append(b, `,"agent":`...)
		b = strconv.AppendQuote(b, s.Agent)
	}
	if s.Host != "" {
		b = append(b, `,"host":`...)
		b = strconv.AppendQuote(b, s.Host)
	}
	return b
}

// appendEarlier appends the attempts of a retried task before its last,
// as "earlier_attempts", so that a report can link each retry to the
// attempt before it. A task that ran once has none, and no field.
func appendEarlier(b []byte, res pool.Result) []byte {
	n := min(res.Attempts-1, len(res.Failed))
	if n <= 0 {
		return b
	}
	b = append(b, `,"earlier_attempts":[`...)
	for i, a := range res.Failed[:n] {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"start":"`...)
		b = append(b, stamp(a.Stats.Start)...)
		b = append(b, `","end":"`...)
		b = append(b, stamp(a.Stats.End)...)
		b = append(b, `","worker_pid":`...)
		b = strconv.AppendInt(b, int64(a.Stats.WorkerPID), 10)
		b = appendAgent(b, a.Stats)
		b = append(b, `,"status":"`...)
		b = append(b, a.Status.String()...)
		b = append(b, '"')
		if a.Signal != "" {
			b = append(b, `,"signal":"`...)
			b = append(b, a.Signal...)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendString appends s as a JSON string, escaped as line escapes it.
func (e *encoder) appendString(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		plain = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\'
	}
	if plain {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	e.buf.Reset()
	_ = e.json.Encode(s) // a string cannot fail
	return append(b, bytes.TrimSuffix(e.buf.Bytes(), []byte("\n"))...)
}

// badLine makes the record of a line that is not a task: status error,
// attempts 0, and why.
func (e *encoder) badLine(index int, why string) record {
	rec := e.unrun(index, pool.StatusError, why)
	rec.bad = true
	return rec
}

// notRun makes the record of a task the run ended without.
func (e *encoder) notRun(index int, why string) record {
	return e.unrun(index, pool.StatusNotRun, why)
}

// unrun makes the record of a slot that never ran: attempts 0, and its
// stats line, if any, empty.
func (e *encoder) unrun(index int, status pool.Status, why string) record {
	rec := record{status: status}
	rec.out = e.line(resultRecord{Index: index, Status: status.String(), Output: jsonNull, Error: why})
	if e.stats {
		rec.stats = e.line(statsRecord{Index: index, Status: status.String()})
	}
	return rec
}
