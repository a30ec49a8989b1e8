package guest_test

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/guest"
)

// The integer fast paths must be invisible: same values, same bytes, and
// encoding/json for everything they do not take.

var intInputs = []string{
	"0", "7", "-7", "42", "-0", "255", "256", "-128", "-129", "32767", "65536",
	"2147483647", "2147483648", "-2147483649", "4294967296",
	"999999999999999999", "-999999999999999999", "1000000000000000000",
	"9223372036854775807", "18446744073709551615", "-9223372036854775808",
	"", "-", "+7", "07", "00", "-07", " 7", "7 ", "7.0", "1e3", "0x10", `"7"`, "null", "true", "7a", "--7",
}

func TestDecodeIntMatchesEncodingJSON(t *testing.T) {
	for _, in := range intInputs {
		t.Run(in, func(t *testing.T) {
			checkDecode[int](t, in)
			checkDecode[int64](t, in)
			checkDecode[int32](t, in)
			checkDecode[int16](t, in)
			checkDecode[int8](t, in)
			checkDecode[uint](t, in)
			checkDecode[uint64](t, in)
			checkDecode[uint32](t, in)
			checkDecode[uint16](t, in)
			checkDecode[uint8](t, in)
			checkDecode[float64](t, in)
			checkDecode[any](t, in)
		})
	}
}

// checkDecode requires that whenever the fast path takes in, encoding/json
// accepts it too and decodes the same value.
func checkDecode[T any](t *testing.T, in string) {
	t.Helper()
	var fast, slow T
	if !guest.DecodeInt([]byte(in), &fast) {
		var zero T
		require.Equal(t, zero, fast, "a declined input must leave the value alone")
		return
	}
	require.NoError(t, json.Unmarshal([]byte(in), &slow), "fast path took %q as %T, encoding/json rejects it", in, fast)
	require.Equal(t, slow, fast, "%q as %T", in, fast)
}

func TestDecodeIntTakesCommonInputs(t *testing.T) {
	var n int
	require.True(t, guest.DecodeInt([]byte("-12"), &n))
	require.Equal(t, -12, n)
	var u uint8
	require.False(t, guest.DecodeInt([]byte("256"), &u), "out of range goes to encoding/json for its error")
	var f float64
	require.False(t, guest.DecodeInt([]byte("1"), &f), "only integer types take the fast path")
}

type celsius int

func (c celsius) MarshalJSON() ([]byte, error) { return []byte(`"` + strconv.Itoa(int(c)) + `C"`), nil }

func TestAppendIntMatchesEncodingJSON(t *testing.T) {
	cases := []struct {
		v    any
		fast func() ([]byte, bool)
	}{
		{0, func() ([]byte, bool) { return guest.AppendInt(0) }},
		{-1, func() ([]byte, bool) { return guest.AppendInt(-1) }},
		{math.MaxInt64, func() ([]byte, bool) { return guest.AppendInt(math.MaxInt64) }},
		{math.MinInt64, func() ([]byte, bool) { return guest.AppendInt(math.MinInt64) }},
		{int64(math.MinInt64), func() ([]byte, bool) { return guest.AppendInt(int64(math.MinInt64)) }},
		{int32(math.MinInt32), func() ([]byte, bool) { return guest.AppendInt(int32(math.MinInt32)) }},
		{int16(-300), func() ([]byte, bool) { return guest.AppendInt(int16(-300)) }},
		{int8(-128), func() ([]byte, bool) { return guest.AppendInt(int8(-128)) }},
		{uint(math.MaxUint64), func() ([]byte, bool) { return guest.AppendInt(uint(math.MaxUint64)) }},
		{uint64(math.MaxUint64), func() ([]byte, bool) { return guest.AppendInt(uint64(math.MaxUint64)) }},
		{uint32(math.MaxUint32), func() ([]byte, bool) { return guest.AppendInt(uint32(math.MaxUint32)) }},
		{uint16(65535), func() ([]byte, bool) { return guest.AppendInt(uint16(65535)) }},
		{uint8(255), func() ([]byte, bool) { return guest.AppendInt(uint8(255)) }},
	}
	for _, tc := range cases {
		fast, ok := tc.fast()
		require.True(t, ok, "%T", tc.v)
		slow, err := json.Marshal(tc.v)
		require.NoError(t, err)
		require.Equal(t, string(slow), string(fast), "%T %v", tc.v, tc.v)
	}
	for _, fast := range []func() ([]byte, bool){
		func() ([]byte, bool) { return guest.AppendInt(1.5) },
		func() ([]byte, bool) { return guest.AppendInt("7") },
		func() ([]byte, bool) { return guest.AppendInt(celsius(3)) },
		func() ([]byte, bool) { return guest.AppendInt(new(int)) },
		func() ([]byte, bool) { return guest.AppendInt[any](nil) },
		func() ([]byte, bool) { return guest.AppendInt([]int{1}) },
	} {
		b, ok := fast()
		require.False(t, ok, "must go to encoding/json")
		require.Empty(t, b)
	}
}

func TestHandleJSONIntegersDoNotAllocate(t *testing.T) {
	guest.HandleJSON("json-square-noalloc", func(n int64) (int64, error) { return n * n, nil })
	name, in := []byte("json-square-noalloc"), []byte("123456")
	status, out := guest.Invoke(name, in)
	require.Equal(t, guest.StatusOK, status)
	require.Equal(t, "15241383936", string(out))
	allocs := testing.AllocsPerRun(100, func() { guest.Invoke(name, in) })
	require.Zero(t, allocs, "an integer task allocates nothing in the SDK")
}

func FuzzDecodeInt(f *testing.F) {
	for _, in := range intInputs {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkDecode[int64](t, in)
		checkDecode[int8](t, in)
		checkDecode[uint32](t, in)
	})
}
