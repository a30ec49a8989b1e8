package guest_test

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/guest"
)

// record is one task of a safepool_batch buffer.
type record struct{ fn, in string }

// encode lays records out the way ABI.md describes.
func encode(records ...record) []byte {
	var buf []byte
	for _, r := range records {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(r.fn)))
		buf = append(buf, r.fn...)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(r.in)))
		buf = append(buf, r.in...)
	}
	return buf
}

func TestEachRecord(t *testing.T) {
	full := encode(record{"a", "1"}, record{"", ""}, record{"ccc", "three"})
	cases := []struct {
		name    string
		buf     []byte
		want    []record
		wantErr string
	}{
		{"empty batch", nil, nil, ""},
		{"records in order", full, []record{{"a", "1"}, {"", ""}, {"ccc", "three"}}, ""},
		{"short name length", full[:2], nil, "the record at byte 0 runs past the end of the 2-byte batch"},
		{"name past end", encode(record{"abcdef", ""})[:6], nil, "the record at byte 0 runs past the end"},
		{"missing input length", full[:len(full)-10], []record{{"a", "1"}, {"", ""}}, "the record at byte 18 runs past the end"},
		{"name ends the batch", full[:18+4+3], []record{{"a", "1"}, {"", ""}}, "the record at byte 18 runs past the end of the 25-byte batch"},
		{"input length cut short", full[:18+4+3+2], []record{{"a", "1"}, {"", ""}}, "the record at byte 18 runs past the end of the 27-byte batch"},
		{"input past end", full[:len(full)-1], []record{{"a", "1"}, {"", ""}}, "the record at byte 18 runs past the end of the 33-byte batch"},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 'x'}, nil, "the record at byte 0 runs past the end"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []record
			err := guest.EachRecord(tc.buf, func(name, in []byte) {
				got = append(got, record{string(name), string(in)})
			})
			require.Equal(t, tc.want, got)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, "guest: malformed batch: "+tc.wantErr)
		})
	}
}

func TestEachRecordInputCannotGrowIntoNextRecord(t *testing.T) {
	buf := encode(record{"d-echo", "ab"}, record{"d-echo", "cd"})
	var first []byte
	require.NoError(t, guest.EachRecord(buf, func(_, in []byte) {
		if first == nil {
			first = in
		}
	}))
	require.Equal(t, 2, cap(first), "a handler appending to its input must not overwrite the next record")
}

func TestRunBatch(t *testing.T) {
	t.Run("one outcome per record, in order", func(t *testing.T) {
		var r recorder
		guest.RunBatch(encode(
			record{"d-echo", "one"},
			record{"d-panic", ""},
			record{"d-fail", "two"},
			record{"nope", ""},
			record{"d-echo", "three"},
		), r.report)
		require.Equal(t, []outcome{
			{guest.StatusOK, "one"},
			{guest.StatusError, "panic: kaboom"},
			{guest.StatusError, "boom: two"},
			{guest.StatusUnknown, guest.UnknownMessage("nope")},
			{guest.StatusOK, "three"},
		}, r.got)
	})
	t.Run("panics in a row, the last record's too, each with its stack", func(t *testing.T) {
		var log strings.Builder
		defer guest.SetPanicLog(&log)()
		var r recorder
		guest.RunBatch(encode(
			record{"d-panic", ""},
			record{"d-bad-error", ""},
			record{"d-echo", "one"},
			record{"d-panic-error", ""},
		), r.report)
		require.Equal(t, []outcome{
			{guest.StatusError, "panic: kaboom"},
			{guest.StatusError, "panic: runtime error: invalid memory address or nil pointer dereference"},
			{guest.StatusOK, "one"},
			{guest.StatusError, "panic: wrapped"},
		}, r.got)
		require.Equal(t, 3, strings.Count(log.String(), "\n\ngoroutine "), "one stack per panic: %s", log.String())
		require.Contains(t, log.String(), "guest_test.init", "the stack names the handler that panicked")
	})
	t.Run("malformed tail after a panic", func(t *testing.T) {
		var r recorder
		buf := encode(record{"d-panic", ""}, record{"d-echo", "two"})
		guest.RunBatch(buf[:len(buf)-1], r.report)
		require.Len(t, r.got, 2)
		require.Equal(t, outcome{guest.StatusError, "panic: kaboom"}, r.got[0])
		require.Equal(t, guest.StatusError, r.got[1].Status)
		require.Contains(t, r.got[1].Data, "malformed batch")
	})
	t.Run("malformed tail", func(t *testing.T) {
		var r recorder
		buf := encode(record{"d-echo", "one"}, record{"d-echo", "two"})
		guest.RunBatch(buf[:len(buf)-1], r.report)
		require.Len(t, r.got, 2)
		require.Equal(t, outcome{guest.StatusOK, "one"}, r.got[0])
		require.Equal(t, guest.StatusError, r.got[1].Status)
		require.Contains(t, r.got[1].Data, "malformed batch")
	})
	t.Run("empty", func(t *testing.T) {
		var r recorder
		guest.RunBatch(nil, r.report)
		require.Empty(t, r.got)
	})
}

// tasksOf returns n task durations of d each.
func tasksOf(n int, d time.Duration) []time.Duration {
	return slices.Repeat([]time.Duration{d}, n)
}

func TestYieldPolicy(t *testing.T) {
	const n = 10_000
	t.Run("small tasks read the clock rarely and yield about every 100 µs", func(t *testing.T) {
		readings, yields := guest.YieldRun(tasksOf(n, 500*time.Nanosecond)) // 5 ms of tasks in all
		require.Less(t, readings, n/12, "the clock is read twice every few dozen tasks, not after each")
		require.GreaterOrEqual(t, len(yields), 40)
		require.LessOrEqual(t, len(yields), 50)
	})
	t.Run("slow tasks yield after every task", func(t *testing.T) {
		readings, yields := guest.YieldRun(tasksOf(n, 200*time.Microsecond))
		require.Len(t, yields, n-1, "after every task from the second, the first one timed")
		require.Equal(t, 1, yields[0])
		require.Equal(t, 2*(n-1), readings, "one reading at each task's start, one at its end")
	})
	t.Run("a module reset before every task reads no clock and never yields", func(t *testing.T) {
		// A FreshInstance worker: each task runs on the state after
		// start-up, whose garbage the reset throws away.
		for range 100 {
			readings, yields := guest.YieldRun(tasksOf(1, 200*time.Microsecond))
			require.Zero(t, readings)
			require.Empty(t, yields)
		}
	})
	t.Run("tasks a round trip apart yield by their own time, not the wall clock's", func(t *testing.T) {
		// An Apply loop: 2 µs tasks, 20 µs apart. 20 ms of tasks' own time
		// is about 200 yields; by the wall clock (220 ms) it would be 2,200.
		readings, yields := guest.YieldRunPaced(tasksOf(n, 2*time.Microsecond), 20*time.Microsecond)
		require.GreaterOrEqual(t, len(yields), 150)
		require.LessOrEqual(t, len(yields), 250)
		require.Less(t, readings, n/12)
	})
	t.Run("a turn to slow tasks is noticed within 32 tasks", func(t *testing.T) {
		_, yields := guest.YieldRun(append(tasksOf(n, 500*time.Nanosecond), tasksOf(100, 200*time.Microsecond)...))
		var slow []int
		for _, i := range yields {
			if i >= n {
				slow = append(slow, i)
			}
		}
		require.NotEmpty(t, slow)
		require.Less(t, slow[0], n+32, "the first slow task's garbage waits at most 32 tasks")
		first := slices.Index(yields, slow[0])
		require.Equal(t, n+100-slow[0], len(yields)-first, "then a yield after every slow task")
	})
}
