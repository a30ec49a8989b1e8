package wire_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/wire"
)

func TestRoundTrip(t *testing.T) {
	t.Run("init", func(t *testing.T) {
		in := &wire.Init{Version: wire.Version, ModulePath: "/m.wasm", CacheDir: "/c", Engine: "wazero",
			MemoryLimit: 64 << 20, Timeout: time.Second, OutputLimit: 1 << 20, LogLimit: 64 << 10,
			FreshInstance: true, Events: true, ProcessLimit: 1 << 32, StartTimeout: 5 * time.Second,
			Env: []string{"A=1", "B="}, Args: []string{"-v", ""}, Program: "m.wasm",
			Dirs:      []wire.Dir{{HostPath: "/srv/in", GuestPath: "/in"}, {HostPath: "/srv/out", GuestPath: "/out", Writable: true}},
			HostFuncs: []string{"lookup"}}
		out, err := wire.DecodeInit(wire.AppendInit(nil, in))
		require.NoError(t, err)
		require.Equal(t, in, out)
	})
	t.Run("init of another version", func(t *testing.T) {
		// Only the version is read: the worker must be able to report a
		// mismatch whatever the rest of the other version's layout.
		in := wire.AppendInit(nil, &wire.Init{Version: wire.Version - 1, ModulePath: "/m.wasm", StartTimeout: time.Second})
		out, err := wire.DecodeInit(in[:len(in)-2])
		require.NoError(t, err)
		require.Equal(t, &wire.Init{Version: wire.Version - 1}, out)
	})
	t.Run("host call and reply", func(t *testing.T) {
		c := &wire.HostCall{Task: 9, Name: "lookup", Input: []byte("k"), Deadline: 1234}
		gc, err := wire.DecodeHostCall(wire.AppendHostCall(nil, c))
		require.NoError(t, err)
		require.Equal(t, c, gc)
		r := &wire.HostReply{Failed: true, Error: "no such key"}
		gr, err := wire.DecodeHostReply(wire.AppendHostReply(nil, r))
		require.NoError(t, err)
		require.Equal(t, r.Error, gr.Error)
		require.True(t, gr.Failed)
		_, err = wire.DecodeHostReply([]byte{7})
		require.ErrorIs(t, err, wire.ErrMalformed)
	})
	t.Run("ready", func(t *testing.T) {
		in := &wire.Ready{Version: 1, Kind: wire.KindSDK, Handlers: []string{"a", "square"}}
		out, err := wire.DecodeReady(wire.AppendReady(nil, in))
		require.NoError(t, err)
		require.Equal(t, in, out)
	})
	t.Run("batch", func(t *testing.T) {
		in := []wire.Task{
			{ID: 1, Func: "square", Input: []byte("7")},
			{ID: 1 << 40, Func: "", Input: nil, MemoryLimit: 1 << 30},
		}
		out, err := wire.DecodeBatchInto(nil, wire.AppendBatch(nil, in))
		require.NoError(t, err)
		require.Equal(t, in, out)
	})
	t.Run("results", func(t *testing.T) {
		in := []wire.Result{
			{ID: 3, Status: wire.StatusOK, Output: []byte("49"), Start: 10, End: 20, PeakMemory: 65536},
			{ID: 4, Status: wire.StatusError, Error: "boom", Log: []byte("tail")},
		}
		out, err := wire.DecodeResults(wire.AppendResults(nil, in))
		require.NoError(t, err)
		require.Equal(t, in, out)
	})
	t.Run("results' distances", func(t *testing.T) {
		// Numbers are sent as distances from the last result's: any
		// values survive, in any order, at the ends of their ranges too.
		in := []wire.Result{
			{ID: math.MaxUint64, Status: wire.StatusOK, Start: math.MaxInt64 - 5, End: math.MaxInt64, PeakMemory: math.MaxUint64},
			{ID: 0, Status: wire.StatusOK, Start: math.MinInt64, End: math.MinInt64 + 3, PeakMemory: 0},
			{ID: 7, Status: wire.StatusKilled, Start: -1, End: -1},
			{ID: 5, Status: wire.StatusOK, Start: 1 << 62, End: 1<<62 + 1, PeakMemory: 1 << 40},
			{ID: 5, Status: wire.StatusOK, Start: 3, End: 2, PeakMemory: 1 << 20},
		}
		out, err := wire.DecodeResults(wire.AppendResults(nil, in))
		require.NoError(t, err)
		require.Equal(t, in, out)
	})
	t.Run("results of a batch are small", func(t *testing.T) {
		// A batch's results, as a worker sends them: IDs one apart, each
		// task starting when the last ended, the same peak memory. Past
		// the first, a result takes a byte for each number but its
		// duration, beside its output.
		const n = 256
		start := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC).UnixNano()
		rs := make([]wire.Result, n)
		for i := range rs {
			end := start + 1500
			rs[i] = wire.Result{ID: uint64(1_000_000 + i), Status: wire.StatusOK, Output: []byte("49"), Start: start, End: end, PeakMemory: 2 << 20}
			start = end
		}
		p := wire.AppendResults(nil, rs)
		first := len(wire.AppendResults(nil, rs[:1]))
		// 11 bytes: ID, status, output (its length and 2 bytes), error,
		// start, duration (2 bytes), peak memory, log.
		require.Equal(t, first+(n-1)*11, len(p)-1, "bytes of results 2..n") // the count takes a byte more
		out, err := wire.DecodeResults(p)
		require.NoError(t, err)
		require.Equal(t, rs, out)
	})
	t.Run("started", func(t *testing.T) {
		id, err := wire.DecodeStarted(wire.AppendStarted(nil, 99))
		require.NoError(t, err)
		require.Equal(t, uint64(99), id)
	})
	t.Run("fatal", func(t *testing.T) {
		in := &wire.Fatal{Code: wire.FatalModule, Message: "no such export"}
		out, err := wire.DecodeFatal(wire.AppendFatal(nil, in))
		require.NoError(t, err)
		require.Equal(t, in, out)
		require.EqualError(t, out, "worker: no such export")
	})
}

func TestDecodeRejects(t *testing.T) {
	good := wire.AppendResults(nil, []wire.Result{{ID: 1, Status: wire.StatusOK, Output: []byte("x")}})
	// Init's first bool, FreshInstance, follows eight one-byte fields.
	badBool := wire.AppendInit(nil, &wire.Init{Version: wire.Version})
	badBool[8] = 7
	decodeBatch := func(p []byte) error { _, err := wire.DecodeBatchInto(nil, p); return err }
	cases := []struct {
		name string
		fn   func([]byte) error
		in   []byte
	}{
		{"empty batch", decodeBatch, nil},
		{"zero tasks", decodeBatch, []byte{0}},
		{"huge task count", decodeBatch, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3}},
		{"input longer than frame", decodeBatch, []byte{1, 1, 0, 100, 'a'}},
		{"truncated results", func(p []byte) error { _, err := wire.DecodeResults(p); return err }, good[:len(good)-1]},
		{"trailing bytes", func(p []byte) error { _, err := wire.DecodeResults(p); return err }, append(append([]byte{}, good...), 0)},
		{"bad status", func(p []byte) error { _, err := wire.DecodeResults(p); return err }, wire.AppendResults(nil, []wire.Result{{ID: 1, Status: 9}})},
		{"bad bool", func(p []byte) error { _, err := wire.DecodeInit(p); return err }, badBool},
		{"bad kind", func(p []byte) error { _, err := wire.DecodeReady(p); return err }, []byte{1, 9, 0}},
		{"version overflow", func(p []byte) error { _, err := wire.DecodeInit(p); return err }, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.fn(tc.in)
			require.Error(t, err)
			require.ErrorIs(t, err, wire.ErrMalformed)
		})
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	w := wire.NewWriter(&buf)
	require.NoError(t, w.Write(wire.TypeStarted, wire.AppendStarted(nil, 5)))
	require.NoError(t, w.Send(wire.TypeBatch, nil)) // the frame layer allows an empty payload

	r := wire.NewReader(bytes.NewReader(buf.Bytes()))
	typ, p, err := r.Read()
	require.NoError(t, err)
	require.Equal(t, wire.TypeStarted, typ)
	id, err := wire.DecodeStarted(p)
	require.NoError(t, err)
	require.Equal(t, uint64(5), id)

	typ, p, err = r.Read()
	require.NoError(t, err)
	require.Equal(t, wire.TypeBatch, typ)
	require.Empty(t, p)

	_, _, err = r.Read()
	require.ErrorIs(t, err, io.EOF)

	t.Run("cut inside a frame", func(t *testing.T) {
		r := wire.NewReader(bytes.NewReader(buf.Bytes()[:3]))
		_, _, err := r.Read()
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		r = wire.NewReader(bytes.NewReader(buf.Bytes()[:5]))
		_, _, err = r.Read()
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	})
	t.Run("oversized length", func(t *testing.T) {
		r := wire.NewReader(bytes.NewReader([]byte{0x7f, 0xff, 0xff, 0xff, 1}))
		_, _, err := r.Read()
		require.True(t, errors.Is(err, wire.ErrTooLarge), "got %v", err)
	})
	t.Run("zero length", func(t *testing.T) {
		r := wire.NewReader(bytes.NewReader([]byte{0, 0, 0, 0}))
		_, _, err := r.Read()
		require.ErrorIs(t, err, wire.ErrMalformed)
	})
}

func TestTypeString(t *testing.T) {
	require.Equal(t, "batch", wire.TypeBatch.String())
	require.Equal(t, "type(99)", wire.Type(99).String())
}
