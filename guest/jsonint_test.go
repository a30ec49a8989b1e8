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
	// 19 and 20 digits: the edges of int64 and uint64, and past them.
	"9223372036854775808", "-9223372036854775809", "9999999999999999999", "-9999999999999999999",
	"10000000000000000000", "18446744073709551616", "0000000000000000007",
	// JSON white space around the number, and other white space.
	"\t-7\r\n", " 0 ", "   ", "\n", "- 7", "7 7", "\v7", "\u00a07", "-\t7", " -0 ", " 007",
	"-1", "-0.0", "0.5", "1E2", "7,", "[7]",
}

// The inputs the fast path must take (it would be no faster otherwise),
// as the type they are decoded into.
func TestDecodeIntTakes(t *testing.T) {
	cases := []struct {
		in   string
		take func(in []byte) (any, bool)
		want any
	}{
		{"-12", decodeAs[int], -12},
		{" -12\n", decodeAs[int], -12},
		{"\t\r\n 42 \t\r\n", decodeAs[int64], int64(42)},
		{"-0", decodeAs[int64], int64(0)},
		{"9223372036854775807", decodeAs[int64], int64(math.MaxInt64)},
		{"-9223372036854775808", decodeAs[int64], int64(math.MinInt64)},
		{"-9223372036854775808", decodeAs[int], math.MinInt},
		{"9999999999999999999", decodeAs[uint64], uint64(9999999999999999999)},
		{"127", decodeAs[int8], int8(127)},
		{"-128", decodeAs[int8], int8(-128)},
		{"255", decodeAs[uint8], uint8(255)},
		{"-32768", decodeAs[int16], int16(math.MinInt16)},
		{"65535", decodeAs[uint16], uint16(math.MaxUint16)},
		{"-2147483648", decodeAs[int32], int32(math.MinInt32)},
		{"4294967295", decodeAs[uint32], uint32(math.MaxUint32)},
		{"0", decodeAs[uint], uint(0)},
	}
	for _, tc := range cases {
		got, ok := tc.take([]byte(tc.in))
		require.True(t, ok, "%q as %T", tc.in, tc.want)
		require.Equal(t, tc.want, got, "%q", tc.in)
	}
}

// The inputs the fast path must leave to encoding/json, for its value or
// its error.
func TestDecodeIntDeclines(t *testing.T) {
	cases := []struct {
		in   string
		take func(in []byte) (any, bool)
	}{
		{"9223372036854775808", decodeAs[int64]},   // overflows int64
		{"-9223372036854775809", decodeAs[int64]},  // below min int64
		{"18446744073709551615", decodeAs[uint64]}, // 20 digits: encoding/json takes it
		{"128", decodeAs[int8]},                    // overflows int8
		{"-129", decodeAs[int8]},                   // below min int8
		{"256", decodeAs[uint8]},                   // overflows uint8
		{"-0", decodeAs[uint8]},                    // a minus sign on an unsigned type
		{"-1", decodeAs[uint]},                     // a negative unsigned
		{"007", decodeAs[int]},                     // leading zeros
		{"-01", decodeAs[int]},                     // leading zero after the sign
		{"+1", decodeAs[int]},                      // plus sign
		{"1.0", decodeAs[int]},                     // a fraction
		{"1e2", decodeAs[int]},                     // an exponent
		{"\v1", decodeAs[int]},                     // white space that JSON does not allow
		{"- 1", decodeAs[int]},                     // space after the sign
		{"", decodeAs[int]},                        // nothing
		{"  ", decodeAs[int]},                      // only white space
		{"-", decodeAs[int]},                       // only a sign
		{"7", decodeAs[float64]},                   // not an integer type
		{"7", decodeAs[celsius]},                   // a named integer type
		{`"7"`, decodeAs[int]},                     // a string
	}
	for _, tc := range cases {
		got, ok := tc.take([]byte(tc.in))
		require.False(t, ok, "%q should go to encoding/json, took %v", tc.in, got)
	}
}

func decodeAs[T any](in []byte) (any, bool) {
	var v T
	ok := guest.DecodeInt(in, &v)
	return v, ok
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

func FuzzAppendInt(f *testing.F) {
	for _, v := range []int64{0, 1, -1, 9, 10, 99, 100, -100, 12345, math.MaxInt64, math.MinInt64, math.MaxInt32, math.MinInt32} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v int64) {
		checkAppend(t, v)
		checkAppend(t, uint64(v))
		checkAppend(t, int32(v))
		checkAppend(t, uint32(v))
		checkAppend(t, int16(v))
		checkAppend(t, uint16(v))
		checkAppend(t, int8(v))
		checkAppend(t, uint8(v))
		checkAppend(t, int(v))
		checkAppend(t, uint(v))
	})
}

func checkAppend[T any](t *testing.T, v T) {
	t.Helper()
	fast, ok := guest.AppendInt(v)
	require.True(t, ok, "%T", v)
	slow, err := json.Marshal(v)
	require.NoError(t, err)
	require.Equal(t, string(slow), string(fast), "%T %v", v, v)
}

// HandleJSON end to end: the integer paths where they apply, encoding/json
// for the rest, the same bytes either way.
func TestHandleJSONIntegerEdges(t *testing.T) {
	guest.HandleJSON("json-edge-neg", func(n int64) (int64, error) { return -n, nil })
	guest.HandleJSON("json-edge-u8", func(n uint8) (uint8, error) { return n + 1, nil })
	guest.HandleJSON("json-edge-half", func(n int) (float64, error) { return float64(n) / 2, nil })
	guest.HandleJSON("json-edge-float", func(f float64) (int32, error) { return int32(f), nil })
	guest.HandleJSON("json-edge-celsius", func(n int16) (celsius, error) { return celsius(n), nil })
	cases := []struct {
		fn, in string
		status int32
		want   string
	}{
		{"json-edge-neg", "-9223372036854775807", guest.StatusOK, "9223372036854775807"},
		{"json-edge-neg", "-9223372036854775808", guest.StatusOK, "-9223372036854775808"}, // -MinInt64 wraps
		{"json-edge-neg", " 12 ", guest.StatusOK, "-12"},
		{"json-edge-neg", "1.5", guest.StatusError,
			"json-edge-neg: input is not valid JSON for int64: json: cannot unmarshal number 1.5 into Go value of type int64"},
		{"json-edge-neg", "9223372036854775808", guest.StatusError,
			"json-edge-neg: input is not valid JSON for int64: json: cannot unmarshal number 9223372036854775808 into Go value of type int64"},
		{"json-edge-neg", "07", guest.StatusError,
			"json-edge-neg: input is not valid JSON for int64: invalid character '7' after top-level value"},
		{"json-edge-u8", "255", guest.StatusOK, "0"},
		{"json-edge-u8", "-0", guest.StatusError,
			"json-edge-u8: input is not valid JSON for uint8: json: cannot unmarshal number -0 into Go value of type uint8"},
		{"json-edge-half", "3", guest.StatusOK, "1.5"},
		{"json-edge-float", "2.75", guest.StatusOK, "2"},
		{"json-edge-float", "1e2", guest.StatusOK, "100"},
		{"json-edge-celsius", "-3", guest.StatusOK, `"-3C"`},
	}
	for _, tc := range cases {
		status, out := guest.Invoke([]byte(tc.fn), []byte(tc.in))
		require.Equal(t, tc.status, status, "%s(%q): %s", tc.fn, tc.in, out)
		require.Equal(t, tc.want, string(out), "%s(%q)", tc.fn, tc.in)
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
