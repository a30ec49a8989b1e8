package guest

import "unsafe"

// HandleJSON spends most of a small task's time in encoding/json's
// reflection: in a wasip1 build, decoding 7 and encoding 49 cost about 6 µs,
// several times the rest of the round trip. Integers are the commonest task
// inputs and outputs, so these fast paths handle the basic integer types
// directly. They give exactly what encoding/json gives, and fall back to it
// for anything else, including every input it would reject, so that errors
// keep encoding/json's messages.
//
// They are written as two plain functions with no calls in them, on a kind
// worked out once when the handler is registered: in a wasip1 build every
// Go call costs a stack check and an unwinding check on return, and the
// earlier path (a type switch per task, then strconv's AppendInt,
// formatBits and formatBase10) spent as long on its calls as on its
// digits (bench/README.md, "safepool run on the Go guest").

// maxFastDigits keeps every canonical integer the fast path accepts inside
// uint64 while it is read: 19 nines are less than 1<<64.
const maxFastDigits = 19

// intKind describes a basic integer type: its size in bytes (0 for any
// other type, named integer types included, which may have their own
// MarshalJSON) and whether it is signed.
type intKind struct {
	size   uintptr
	signed bool
}

// kindOf returns the intKind of T.
func kindOf[T any]() intKind {
	switch any((*T)(nil)).(type) {
	case *int:
		return intKind{unsafe.Sizeof(int(0)), true}
	case *int64:
		return intKind{8, true}
	case *int32:
		return intKind{4, true}
	case *int16:
		return intKind{2, true}
	case *int8:
		return intKind{1, true}
	case *uint:
		return intKind{unsafe.Sizeof(uint(0)), false}
	case *uint64:
		return intKind{8, false}
	case *uint32:
		return intKind{4, false}
	case *uint16:
		return intKind{2, false}
	case *uint8:
		return intKind{1, false}
	default:
		return intKind{}
	}
}

// decode stores the JSON number in into the value of kind k at p and
// returns true if in is a canonical JSON integer (no sign but '-', no
// leading zero, at most maxFastDigits digits, JSON white space around it
// allowed), k is a basic integer kind and the value fits it. Otherwise it
// leaves the value alone and returns false.
func (k intKind) decode(in []byte, p unsafe.Pointer) bool {
	if k.size == 0 {
		return false
	}
	i, j := 0, len(in)
	for i < j && isSpace(in[i]) {
		i++
	}
	for j > i && isSpace(in[j-1]) {
		j--
	}
	neg := i < j && in[i] == '-'
	if neg {
		i++
	}
	n := j - i
	if n == 0 || n > maxFastDigits || (in[i] == '0' && n > 1) {
		return false
	}
	var u uint64
	for _, c := range in[i:j] {
		if c < '0' || c > '9' {
			return false
		}
		u = u*10 + uint64(c-'0')
	}
	// The value's magnitude must fit: up to 1<<(bits-1) negative and one
	// less positive when signed; up to 1<<bits - 1 when not, with no minus
	// sign at all (encoding/json refuses one for unsigned types even on
	// -0). A uint64 holds every 19-digit magnitude.
	bits := 8 * k.size
	switch {
	case !k.signed && neg:
		return false
	case !k.signed:
		if bits < 64 && u>>bits != 0 {
			return false
		}
	case neg:
		if u > 1<<(bits-1) {
			return false
		}
		u = -u
	default:
		if u >= 1<<(bits-1) {
			return false
		}
	}
	// The low bytes of the two's complement are the value in every size.
	switch k.size {
	case 8:
		*(*uint64)(p) = u
	case 4:
		*(*uint32)(p) = uint32(u)
	case 2:
		*(*uint16)(p) = uint16(u)
	default:
		*(*uint8)(p) = uint8(u)
	}
	return true
}

// isSpace reports whether c is JSON white space.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// intOut holds the last integer output of a [HandleJSON] handler; the host
// copies it before the next task. It is as long as the longest integer.
var intOut = make([]byte, 20)

// digitPairs holds "00" to "99", for two digits a step.
const digitPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

// format writes the decimal form of the value of kind k at p, which must
// be an integer kind, at the end of intOut, and returns that part of it.
func (k intKind) format(p unsafe.Pointer) []byte {
	var u uint64
	switch k.size {
	case 8:
		u = *(*uint64)(p)
	case 4:
		u = uint64(*(*uint32)(p))
		if k.signed {
			u = uint64(int64(int32(u)))
		}
	case 2:
		u = uint64(*(*uint16)(p))
		if k.signed {
			u = uint64(int64(int16(u)))
		}
	default:
		u = uint64(*(*uint8)(p))
		if k.signed {
			u = uint64(int64(int8(u)))
		}
	}
	neg := k.signed && int64(u) < 0
	if neg {
		u = -u // the magnitude, 1<<63 for the least int64 included
	}
	b := intOut[:20:20]
	i := len(b)
	for u >= 100 {
		q := u / 100
		r := (u - q*100) * 2
		i -= 2
		b[i], b[i+1] = digitPairs[r], digitPairs[r+1]
		u = q
	}
	if u >= 10 {
		i -= 2
		b[i], b[i+1] = digitPairs[2*u], digitPairs[2*u+1]
	} else {
		i--
		b[i] = byte('0' + u)
	}
	if neg {
		i--
		b[i] = '-'
	}
	return b[i:]
}
