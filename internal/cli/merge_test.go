package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/pool"
)

// TestEncoderTask: the --out and --stats lines written by hand are the
// ones encoding/json writes for the same records.
func TestEncoderTask(t *testing.T) {
	start := time.Date(2026, 1, 2, 15, 4, 5, 123456789, time.UTC)
	results := []pool.Result{
		{Status: pool.StatusOK, Output: []byte("49"), Attempts: 1},
		{Status: pool.StatusOK, Output: []byte("{ \"a\" : [1, 2],\n \"b\": \"x y\" }"), Attempts: 2},
		{Status: pool.StatusOK, Output: []byte("plain <text> & \"quotes\"\n"), Attempts: 1},
		{Status: pool.StatusOK, Output: []byte(`"\u2028 é"`), Attempts: 1},
		{Status: pool.StatusError, Error: "boom: \"x\"\n\tat <main> & é \x01", Attempts: 3},
		{Status: pool.StatusMemoryLimit, Error: "memory limit of 16 MiB reached", Attempts: 1,
			Stats: pool.Stats{Start: start, End: start.Add(time.Second), WorkerPID: 42, PeakMemory: 1 << 20, MemoryLimit: 16 << 20}},
	}
	for _, enc := range []encoding{encodingJSON, encodingBase64} {
		e := newEncoder(&runOptions{encoding: enc, stats: "s", killed: "k"})
		for i, res := range results {
			rec := e.task(i, []byte("7"), res)
			output := jsonNull
			if res.Status == pool.StatusOK {
				output, _ = outputValue(res.Output, enc)
			}
			want := e.line(resultRecord{Index: i, Status: res.Status.String(), Output: output, Error: res.Error, Attempts: res.Attempts})
			require.Equal(t, string(want), string(rec.out), "%s record %d", enc.String(), i)
			s := res.Stats
			want = e.line(statsRecord{Index: i, Start: stamp(s.Start), End: stamp(s.End), WorkerPID: s.WorkerPID, Attempts: res.Attempts,
				PeakMemory: s.PeakMemory, MemoryLimit: s.MemoryLimit, Status: res.Status.String()})
			require.Equal(t, string(want), string(rec.stats), "%s stats %d", enc.String(), i)
			require.Equal(t, res.Status.IsKilledTask(), rec.killed != nil, "a killed line for killed tasks only")
		}
	}
}

// TestEncoderRefusesOutputThatIsNotUTF8: under JSON, an output JSON cannot
// carry unchanged makes the record an error that says to use base64.
func TestEncoderRefusesOutputThatIsNotUTF8(t *testing.T) {
	e := newEncoder(&runOptions{stats: "s"})
	rec := e.task(3, []byte(`"x"`), pool.Result{Status: pool.StatusOK, Output: []byte("\xff\xfeok"), Attempts: 1})
	require.Equal(t, pool.StatusError, rec.status)
	require.True(t, rec.notUTF8)
	require.Equal(t, `{"index":3,"status":"error","output":null,"error":"the task succeeded, but its output (4 bytes) is not valid UTF-8, which JSON cannot carry unchanged; run with --encoding base64 to get the bytes","attempts":1}`+"\n", string(rec.out))
	require.Contains(t, string(rec.stats), `"status":"error"`)
}

// mergeRun feeds a merger the input lines (a task or a bad line each) and
// the results a map would give, then ends it with err, and returns what
// the writer wrote to --out.
func mergeRun(t *testing.T, slots []slot, results []pool.Result, err error) string {
	t.Helper()
	var out bytes.Buffer
	o := &runOptions{onKill: pool.Abort}
	w := newWriter(&lineFile{name: "out", w: &out}, nil, nil, func() {})
	m := newMerger(o, newEncoder(o), w)
	// A chunk's map gives a result per task: those that did not finish
	// are not_run.
	var all []pool.Result
	for _, s := range slots {
		if s.bad == "" && !s.blank {
			all = append(all, pool.Result{Index: len(all), Status: pool.StatusNotRun})
		}
	}
	for _, res := range results {
		all[res.Index] = res
	}
	m.add(slots, 0, all, nil, err != nil)
	m.finish(err, false)
	require.NoError(t, w.close())
	return out.String()
}

// statuses lists the index and status of each line of --out.
func statuses(out string) []string {
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		idx := l[len(`{"index":`):strings.Index(l, ",")]
		st := l[strings.Index(l, `"status":"`)+len(`"status":"`):]
		got = append(got, idx+" "+st[:strings.Index(st, `"`)])
	}
	return got
}

func TestMergerKeepsInputOrder(t *testing.T) {
	// Lines: bad, task 0, task 1, bad, bad, task 2, bad.
	slots := []slot{{index: 0, bad: "line 1 is bad"}, {index: 1, input: []byte("1")}, {index: 2, input: []byte("2")},
		{index: 3, bad: "line 4 is bad"}, {index: 4, bad: "line 5 is bad"}, {index: 5, input: []byte("5")}, {index: 6, bad: "line 7 is bad"}}
	results := []pool.Result{
		{Index: 0, Status: pool.StatusOK, Output: []byte("1"), Attempts: 1},
		{Index: 1, Status: pool.StatusOK, Output: []byte("4"), Attempts: 1},
		{Index: 2, Status: pool.StatusOK, Output: []byte("25"), Attempts: 1},
	}
	out := mergeRun(t, slots, results, nil)
	require.Equal(t, []string{"0 error", "1 ok", "2 ok", "3 error", "4 error", "5 ok", "6 error"}, statuses(out))
	require.Contains(t, out, `{"index":3,"status":"error","output":null,"error":"line 4 is bad","attempts":0}`)
}

// TestMergerAfterAbort: after an abort a map gives what finished, which
// can leave gaps; each task in a gap is written as not_run, up to the last
// slot with a record of its own, and nothing after it. After a task's
// abort that is the task itself (and the bad lines right behind it):
// chunks after it ran on until the abort reached them.
func TestMergerAfterAbort(t *testing.T) {
	var slots []slot
	for i := range 8 {
		if i == 4 {
			slots = append(slots, slot{index: i, bad: "line 5 is bad"})
			continue
		}
		slots = append(slots, slot{index: i, input: []byte("1")})
	}
	// Pool indices 0..6 are lines 1-4 and 6-8. Task 0 finished in order;
	// 1 and 2 were still running when task 3 (line 4) aborted the run; 5
	// (line 7) had finished; 4 and 6 had not.
	results := []pool.Result{
		{Index: 0, Status: pool.StatusOK, Output: []byte("1"), Attempts: 1},
		{Index: 3, Status: pool.StatusKilled, Error: "worker killed by SIGKILL while running the task", Attempts: 1},
		{Index: 5, Status: pool.StatusOK, Output: []byte("1"), Attempts: 1},
	}
	abort := &pool.TaskError{Index: 3, Status: pool.StatusKilled}
	out := mergeRun(t, slots, results, abort)
	require.Equal(t, []string{"0 ok", "1 not_run", "2 not_run", "3 killed", "4 error"}, statuses(out))
	require.Contains(t, out, `{"index":1,"status":"not_run","output":null,"error":"not run: the run was aborted by line 4 (killed)","attempts":0}`)

	// Interrupted: every task that finished has its record.
	out = mergeRun(t, slots, results, context.Canceled)
	require.Equal(t, []string{"0 ok", "1 not_run", "2 not_run", "3 killed", "4 error", "5 not_run", "6 ok"}, statuses(out))
	require.Contains(t, out, `{"index":5,"status":"not_run","output":null,"error":"not run: the run was interrupted","attempts":0}`)

	// Interrupted with nothing past the last record: no not_run at all.
	out = mergeRun(t, slots, results[:1], context.Canceled)
	require.Equal(t, []string{"0 ok"}, statuses(out))
}

// TestMergerBlankLinesAcrossChunks: blank lines at the end of one chunk
// are bad lines when the next chunk has more input, and get no record at
// the end of the input.
func TestMergerBlankLinesAcrossChunks(t *testing.T) {
	var out bytes.Buffer
	o := &runOptions{}
	w := newWriter(&lineFile{name: "out", w: &out}, nil, nil, func() {})
	m := newMerger(o, newEncoder(o), w)
	ok := func(i int) pool.Result {
		return pool.Result{Index: i, Status: pool.StatusOK, Output: []byte("1"), Attempts: 1}
	}
	m.add([]slot{{index: 0, input: []byte("1")}, {index: 1, blank: true}}, 0, []pool.Result{ok(0)}, nil, false)
	m.add([]slot{{index: 2, blank: true}}, 1, nil, nil, false)
	m.add([]slot{{index: 3, input: []byte("1")}, {index: 4, blank: true}}, 1, []pool.Result{ok(0)}, nil, false)
	m.finish(nil, false)
	require.NoError(t, w.close())
	require.Equal(t, []string{"0 ok", "1 error", "2 error", "3 ok"}, statuses(out.String()))
	require.Contains(t, out.String(), `"error":"line 2 is blank;`)
	require.Equal(t, []int{2, 3}, m.badLines)
}
