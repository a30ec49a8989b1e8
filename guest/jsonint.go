package guest

import "strconv"

// HandleJSON spends most of a small task's time in encoding/json's
// reflection: in a wasip1 build, decoding 7 and encoding 49 cost about 6 µs,
// several times the rest of the round trip. Integers are the commonest task
// inputs and outputs, so these fast paths handle the basic integer types
// directly. They give exactly what encoding/json gives, and fall back to it
// for anything else, including every input it would reject, so that errors
// keep encoding/json's messages.

// maxFastDigits keeps every canonical integer the fast path accepts inside
// int64.
const maxFastDigits = 18

// decodeInt stores the JSON number in into *v and returns true if in is a
// canonical JSON integer (no sign but '-', no leading zero, no white space,
// at most maxFastDigits digits), v points to a basic integer type and the
// value fits it. Otherwise it leaves *v alone and returns false.
func decodeInt[T any](in []byte, v *T) bool {
	n, ok := canonicalInt(in)
	if !ok {
		return false
	}
	// encoding/json refuses any minus sign for unsigned types, even on -0.
	unsigned := in[0] != '-'
	switch p := any(v).(type) {
	case *int:
		return set(p, n)
	case *int64:
		*p = n
	case *int32:
		return set(p, n)
	case *int16:
		return set(p, n)
	case *int8:
		return set(p, n)
	case *uint:
		return unsigned && set(p, n)
	case *uint64:
		return unsigned && set(p, n)
	case *uint32:
		return unsigned && set(p, n)
	case *uint16:
		return unsigned && set(p, n)
	case *uint8:
		return unsigned && set(p, n)
	default:
		return false
	}
	return true
}

// set stores n in *p if it fits, and reports whether it did.
func set[I int | int8 | int16 | int32 | uint | uint8 | uint16 | uint32 | uint64](p *I, n int64) bool {
	if int64(I(n)) != n {
		return false
	}
	*p = I(n)
	return true
}

// canonicalInt parses in if it is a canonical JSON integer of at most
// maxFastDigits digits.
func canonicalInt(in []byte) (int64, bool) {
	digits := in
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > maxFastDigits || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if len(digits) != len(in) {
		n = -n
	}
	return n, true
}

// intOut holds the last integer output of a [HandleJSON] handler; the host
// copies it before the next task.
var intOut = make([]byte, 0, 24)

// appendInt appends the JSON encoding of *v to b and returns it and true if
// v points to a basic integer type, and b and false otherwise. Unlike
// encodeInt it does not box the value, so it does not allocate.
func appendInt[T any](b []byte, v *T) ([]byte, bool) {
	switch p := any(v).(type) {
	case *int:
		return strconv.AppendInt(b, int64(*p), 10), true
	case *int64:
		return strconv.AppendInt(b, *p, 10), true
	case *int32:
		return strconv.AppendInt(b, int64(*p), 10), true
	case *int16:
		return strconv.AppendInt(b, int64(*p), 10), true
	case *int8:
		return strconv.AppendInt(b, int64(*p), 10), true
	case *uint:
		return strconv.AppendUint(b, uint64(*p), 10), true
	case *uint64:
		return strconv.AppendUint(b, *p, 10), true
	case *uint32:
		return strconv.AppendUint(b, uint64(*p), 10), true
	case *uint16:
		return strconv.AppendUint(b, uint64(*p), 10), true
	case *uint8:
		return strconv.AppendUint(b, uint64(*p), 10), true
	default:
		return b, false
	}
}
