package wire_test

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/wire"
)

// benchBatch is the pool's default batch size: one Batch frame and one
// Results frame carry this many tasks on a busy pool.
const benchBatch = 256

// squareTasks is a batch as the pool sends it for a map of "square" over
// small integers.
func squareTasks(n int) []wire.Task {
	ts := make([]wire.Task, n)
	for i := range ts {
		ts[i] = wire.Task{ID: uint64(1_000_000 + i), Func: "square", Input: []byte(strconv.Itoa(500_000 + i))}
	}
	return ts
}

// squareResults is the answer to squareTasks, with the stats a worker fills
// in for every task.
func squareResults(n int) []wire.Result {
	now := time.Now().UnixNano()
	rs := make([]wire.Result, n)
	for i := range rs {
		v := 500_000 + i
		rs[i] = wire.Result{
			ID: uint64(1_000_000 + i), Status: wire.StatusOK, Output: []byte(strconv.Itoa(v * v)),
			Start: now + int64(i)*700, End: now + int64(i+1)*700, PeakMemory: 2 << 20, // each starts as the last ends
		}
	}
	return rs
}

func reportPerTask(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/task")
}

func BenchmarkAppendBatch(b *testing.B) {
	tasks := squareTasks(benchBatch)
	buf := wire.AppendBatch(nil, tasks)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = wire.AppendBatch(buf[:0], tasks)
	}
	reportPerTask(b)
}

func BenchmarkDecodeBatch(b *testing.B) {
	payload := wire.AppendBatch(nil, squareTasks(benchBatch))
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	var ts []wire.Task
	for b.Loop() {
		var err error
		ts, err = wire.DecodeBatchInto(ts[:0], payload) // as a worker does
		if err != nil || len(ts) != benchBatch {
			b.Fatalf("decode: %v, %d tasks", err, len(ts))
		}
	}
	reportPerTask(b)
}

func BenchmarkAppendResults(b *testing.B) {
	rs := squareResults(benchBatch)
	buf := wire.AppendResults(nil, rs)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = wire.AppendResults(buf[:0], rs)
	}
	reportPerTask(b)
}

func BenchmarkDecodeResults(b *testing.B) {
	payload := wire.AppendResults(nil, squareResults(benchBatch))
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		rs, err := wire.DecodeResults(payload)
		if err != nil || len(rs) != benchBatch {
			b.Fatalf("decode: %v, %d results", err, len(rs))
		}
	}
	reportPerTask(b)
}

// BenchmarkDecodeResultsInto decodes into one slice of results used again,
// as the host's connection to a worker does.
func BenchmarkDecodeResultsInto(b *testing.B) {
	payload := wire.AppendResults(nil, squareResults(benchBatch))
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	var rs []wire.Result
	for b.Loop() {
		var err error
		rs, err = wire.DecodeResultsInto(rs, payload)
		if err != nil || len(rs) != benchBatch {
			b.Fatalf("decode: %v, %d results", err, len(rs))
		}
	}
	reportPerTask(b)
}

// BenchmarkFrameRoundTrip is one batch's whole trip through the protocol,
// without the pipe: encode the tasks, frame them, read the frame back and
// decode it, then the same for the results.
func BenchmarkFrameRoundTrip(b *testing.B) {
	tasks, results := squareTasks(benchBatch), squareResults(benchBatch)
	var stream bytes.Buffer
	w, r := wire.NewWriter(&stream), wire.NewReader(&stream)
	var payload []byte
	var decoded []wire.Task
	b.ReportAllocs()
	for b.Loop() {
		payload = wire.AppendBatch(payload[:0], tasks)
		if err := w.Send(wire.TypeBatch, payload); err != nil {
			b.Fatal(err)
		}
		typ, p, err := r.Read()
		if err != nil || typ != wire.TypeBatch {
			b.Fatalf("read batch: %v %v", typ, err)
		}
		if decoded, err = wire.DecodeBatchInto(decoded[:0], p); err != nil {
			b.Fatal(err)
		}
		payload = wire.AppendResults(payload[:0], results)
		if err := w.Send(wire.TypeResults, payload); err != nil {
			b.Fatal(err)
		}
		typ, p, err = r.Read()
		if err != nil || typ != wire.TypeResults {
			b.Fatalf("read results: %v %v", typ, err)
		}
		if _, err := wire.DecodeResults(p); err != nil {
			b.Fatal(err)
		}
	}
	reportPerTask(b)
}

// TestBenchFixturesRoundTrip keeps the benchmarks honest: what they encode
// decodes to the same messages.
func TestBenchFixturesRoundTrip(t *testing.T) {
	tasks := squareTasks(benchBatch)
	gotTasks, err := wire.DecodeBatchInto(nil, wire.AppendBatch(nil, tasks))
	require.NoError(t, err)
	require.Equal(t, tasks, gotTasks)
	results := squareResults(benchBatch)
	gotResults, err := wire.DecodeResults(wire.AppendResults(nil, results))
	require.NoError(t, err)
	require.Equal(t, results, gotResults)
}
