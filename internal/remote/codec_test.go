package remote

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	a := Agent{Name: "a1", Host: "h", Instance: "i-1", Workers: 2}
	spec := Spec{Pool: "p", Module: "abc", ModuleSize: 9, Name: "m.wasm", Engine: "wazero", MemoryLimit: 64 << 20,
		Timeout: time.Second, StartTimeout: 30 * time.Second, OutputLimit: 1, LogLimit: 2, FreshInstance: true,
		BatchSize: 256, MinAvailable: 5, GateTimeout: time.Minute, Events: true,
		Env: []string{"A=1"}, Args: []string{"x", "y"}, Dirs: []Dir{{HostPath: "/srv", GuestPath: "/data", Writable: true}}}
	c := &Chunk{ID: 7, Spec: spec, Tasks: []Task{{ID: 1, Func: "square", Input: []byte("3")}, {ID: 2, InputRef: "in-2", MemoryLimit: 1 << 20, Gate: true}}}
	got, err := UnmarshalChunk(MarshalChunk(c))
	require.NoError(t, err)
	require.Equal(t, c, got)

	s, err := UnmarshalSpec(MarshalSpec(&spec))
	require.NoError(t, err)
	require.Equal(t, &spec, s)

	cl := &Claim{Pool: "p", Chunk: 7, Agent: a}
	gcl, err := UnmarshalClaim(MarshalClaim(cl))
	require.NoError(t, err)
	require.Equal(t, cl, gcl)

	r := &Ready{Pool: "p", Agent: a, Kind: 1, Handlers: []string{"square", "fail"}, Err: "x", ModuleErr: true}
	gr, err := UnmarshalReady(MarshalReady(r))
	require.NoError(t, err)
	require.Equal(t, r, gr)

	rs := &Results{Pool: "p", Agent: a, Results: []Result{{ID: 1, Status: 1, Output: []byte("9"), Start: 1, End: 2, WorkerPID: 3, PeakMemory: 4, MemoryLimit: 5},
		{ID: 2, Status: 3, OutputRef: "o", Error: "e", Log: []byte("l"), Died: true, Signal: "SIGKILL", ExitCode: -1, Hung: true, GateFailed: "g"}},
		Beat: true, Running: []uint64{7, 1 << 40}}
	grs, err := UnmarshalResults(MarshalResults(rs))
	require.NoError(t, err)
	require.Equal(t, rs, grs)

	h := &Heartbeat{Agent: a, Seq: 9, Holding: []Holding{{Pool: "p", Chunks: []uint64{1, 2}, Running: []uint64{5}}}}
	gh, err := UnmarshalHeartbeat(MarshalHeartbeat(h))
	require.NoError(t, err)
	require.Equal(t, h, gh)

	rel := &Release{Pool: "p", Agent: a, IDs: []uint64{3, 4}, Why: "closing"}
	grel, err := UnmarshalRelease(MarshalRelease(rel))
	require.NoError(t, err)
	require.Equal(t, rel, grel)

	st := &Stop{Pool: "p", All: true, Chunks: []uint64{8}}
	gst, err := UnmarshalStop(MarshalStop(st))
	require.NoError(t, err)
	require.Equal(t, st, gst)
}

func TestRefusesOtherVersionsAndTypes(t *testing.T) {
	b := MarshalStop(&Stop{Pool: "p"})
	b[0] = Version + 1
	_, err := UnmarshalStop(b)
	require.ErrorIs(t, err, ErrMalformed)
	require.ErrorContains(t, err, "same safepool release")
	_, err = UnmarshalClaim(MarshalStop(&Stop{Pool: "p"}))
	require.ErrorIs(t, err, ErrMalformed)
	_, err = UnmarshalChunk(nil)
	require.ErrorIs(t, err, ErrMalformed)
	tr := append(MarshalStop(&Stop{Pool: "p"}), 0)
	_, err = UnmarshalStop(tr)
	require.ErrorIs(t, err, ErrMalformed)
}

// FuzzDecode feeds every decoder arbitrary bytes: an error, never a panic.
func FuzzDecode(f *testing.F) {
	f.Add(MarshalChunk(&Chunk{ID: 1, Tasks: []Task{{ID: 1, Input: []byte("x")}}}))
	f.Add(MarshalResults(&Results{Results: []Result{{ID: 1, Status: 1}}}))
	f.Add(MarshalHeartbeat(&Heartbeat{Holding: []Holding{{Pool: "p", Chunks: []uint64{1}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, typ := range []byte{typeChunk, typeClaim, typeReady, typeResults, typeHeartbeat, typeRelease, typeStop, typeSpec} {
			if len(b) >= 2 {
				b[1] = typ
			}
			_, _ = UnmarshalChunk(b)
			if c, err := UnmarshalChunkShared(b); err == nil {
				for range c.All() { // checked whole: reading cannot fail
				}
			}
			_, _ = UnmarshalClaim(b)
			_, _ = UnmarshalReady(b)
			_, _ = UnmarshalResults(b)
			_, _ = UnmarshalHeartbeat(b)
			_, _ = UnmarshalRelease(b)
			_, _ = UnmarshalStop(b)
			_, _ = UnmarshalSpec(b)
		}
	})
}

// A batch's results go as steps from the one before: IDs out of order, a
// PID that changes back, a start before the one before, an end before the
// start and a status past the flags all come back as they were.
func TestResultsStepsRoundTrip(t *testing.T) {
	rs := &Results{Pool: "p", Results: []Result{
		{ID: 10, Status: 1, Output: []byte("100"), Start: 1000, End: 1500, WorkerPID: 7},
		{ID: 11, Status: 1, Output: []byte("121"), Start: 1500, End: 1600, WorkerPID: 7},
		{ID: 3, Status: 255, Start: 900, End: 800, WorkerPID: 8, PeakMemory: 1 << 20, MemoryLimit: 2 << 20},
		{ID: 12, WorkerPID: 7},
		{ID: 1 << 63, Status: 4, Error: "x", Died: true, Signal: "SIGKILL", ExitCode: -1, Start: -5, End: 1 << 62},
	}}
	got, err := UnmarshalResults(MarshalResults(rs))
	require.NoError(t, err)
	require.Equal(t, rs, got)
	var into Results
	require.NoError(t, DecodeResults(MarshalResults(&Results{Pool: "p", Beat: true, Running: []uint64{4, 5}}), &into))
	require.Equal(t, []uint64{4, 5}, into.Running)
	// Decoded into the room of a message that said what ran, results
	// that say nothing of it leave no trace of it.
	require.NoError(t, DecodeResults(MarshalResults(rs), &into))
	require.Equal(t, rs.Results, into.Results)
	require.False(t, into.Beat)
	require.Empty(t, into.Running)
	// A beat with nothing running is told apart from no beat.
	require.NoError(t, DecodeResults(MarshalResults(&Results{Pool: "p", Beat: true}), &into))
	require.True(t, into.Beat)
	require.Empty(t, into.Running)
	// A typical answer (ID, status, a short output, times, the PID once)
	// takes a few bytes besides its output.
	typical := &Results{Pool: "p"}
	for i := range 100 {
		typical.Results = append(typical.Results, Result{ID: uint64(100 + i), Status: 1, Output: []byte("49"),
			Start: int64(1e18 + 1000*i), End: int64(1e18 + 1000*i + 400), WorkerPID: 4242})
	}
	require.Less(t, len(MarshalResults(typical)), 100*12)
}

// A chunk's tasks go as steps from the one before, the function once: a
// task of another function or with an ID out of order comes back as it
// was.
func TestChunkStepsRoundTrip(t *testing.T) {
	c := &Chunk{ID: 3, Tasks: []Task{
		{ID: 50, Func: "square", Input: []byte("7")},
		{ID: 51, Func: "square"},
		{ID: 2, Func: "cube", Input: []byte("2"), MemoryLimit: -1},
		{ID: 52, Func: "square", InputRef: "p/in/52", Gate: true},
	}}
	got, err := UnmarshalChunk(MarshalChunk(c))
	require.NoError(t, err)
	require.Equal(t, c, got)
	b := MarshalChunk(&Chunk{ID: 1, Tasks: []Task{{ID: 0}}}) // ends with the task's fields, then its ID step
	b[len(b)-2] = 0x40                                       // a field no encoder writes
	_, err = UnmarshalChunk(b)
	require.ErrorIs(t, err, ErrMalformed)
}

// A chunk decoded with UnmarshalChunkShared keeps its tasks encoded: All
// reads them, as UnmarshalChunk's Tasks, with inputs that alias the
// message; a task damaged anywhere in it fails the decoding at once, so
// that reading the tasks later cannot.
func TestChunkSharedReadsTasksFromTheMessage(t *testing.T) {
	c := &Chunk{ID: 3, Spec: Spec{Pool: "p"}, Tasks: []Task{
		{ID: 50, Func: "square", Input: []byte("7")},
		{ID: 51, Func: "square"},
		{ID: 2, Func: "cube", Input: []byte("2"), MemoryLimit: 9},
		{ID: 52, Func: "square", InputRef: "p/in/52", Gate: true},
	}}
	b := MarshalChunk(c)
	got, err := UnmarshalChunkShared(b)
	require.NoError(t, err)
	require.Nil(t, got.Tasks)
	require.Equal(t, 4, got.Len())
	var read []Task
	for i, task := range got.All() {
		require.Equal(t, len(read), i)
		read = append(read, *task)
	}
	require.Equal(t, c.Tasks, read)
	at := bytes.Index(b, []byte("2\x04cube")) // task 2's input, then its function
	require.Positive(t, at)
	b[at] = 'X'
	for i, task := range got.All() {
		if i == 2 {
			require.NotEqual(t, "2", string(task.Input), "the input aliases the message")
		}
	}
	for i, task := range got.All() { // a break stops the reading
		require.Zero(t, i)
		require.Equal(t, uint64(50), task.ID)
		break
	}

	damaged := MarshalChunk(c)
	damaged = damaged[:len(damaged)-3] // the last task cut short
	_, err = UnmarshalChunkShared(damaged)
	require.ErrorIs(t, err, ErrMalformed)
	_, err = UnmarshalChunk(damaged)
	require.ErrorIs(t, err, ErrMalformed)
}

// A ChunkWriter writes what MarshalChunk does, and refuses a count other
// than the one it announced.
func TestChunkWriter(t *testing.T) {
	c := &Chunk{ID: 9, Spec: Spec{Pool: "p", BatchSize: 4}, Tasks: []Task{{ID: 1, Func: "f", Input: []byte("a")}, {ID: 2, Func: "g"}}}
	var w ChunkWriter
	w.Begin([]byte("keep"), c.ID, &c.Spec, 2, "f")
	for i := range c.Tasks {
		w.Add(&c.Tasks[i])
	}
	require.Equal(t, append([]byte("keep"), MarshalChunk(c)...), w.Bytes())

	w.Begin(nil, 1, &c.Spec, 1, "f")
	require.Panics(t, func() { w.Bytes() }, "fewer tasks than announced")
	w.Add(&c.Tasks[0])
	require.Panics(t, func() { w.Add(&c.Tasks[1]) }, "more tasks than announced")
}

// A ResultsWriter's message decodes to the results added, and after Reset
// the next message starts afresh: its first result is not a step from
// the last one before.
func TestResultsWriterMessages(t *testing.T) {
	a := Agent{Name: "n", Host: "h", Instance: "i", Workers: 2}
	first := []Result{{ID: 7, Status: 1, Output: []byte("49"), Start: 100, End: 150, WorkerPID: 3},
		{ID: 8, Status: 4, Error: "killed", Died: true, Signal: "SIGKILL", ExitCode: -1, Start: 160, End: 170, WorkerPID: 3}}
	second := []Result{{ID: 2, Status: 1, Output: []byte("4"), Start: 90, End: 95, WorkerPID: 5, PeakMemory: 1 << 20, MemoryLimit: 2 << 20}}
	var w ResultsWriter
	for i := range first {
		w.Add(&first[i])
	}
	require.Equal(t, 2, w.Len())
	got, err := UnmarshalResults(w.AppendMessage(nil, "p", &a, true, []uint64{9}))
	require.NoError(t, err)
	require.Equal(t, &Results{Pool: "p", Agent: a, Results: first, Beat: true, Running: []uint64{9}}, got)

	w.Reset()
	require.Zero(t, w.Len())
	require.Zero(t, w.Size())
	w.Add(&second[0])
	got, err = UnmarshalResults(w.AppendMessage([]byte("room"), "p", &a, false, nil)[len("room"):])
	require.NoError(t, err)
	require.Equal(t, &Results{Pool: "p", Agent: a, Results: second}, got)
}
