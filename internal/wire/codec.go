package wire

import (
	"encoding/binary"
	"fmt"
	"math"
)

// enc appends fields to a payload.
type enc []byte

func (e enc) uint(v uint64) enc { return binary.AppendUvarint(e, v) }
func (e enc) int(v int64) enc   { return binary.AppendVarint(e, v) }
func (e enc) bool(v bool) enc {
	if v {
		return append(e, 1)
	}
	return append(e, 0)
}
func (e enc) bytes(b []byte) enc { return append(e.uint(uint64(len(b))), b...) }
func (e enc) str(s string) enc   { return append(e.uint(uint64(len(s))), s...) }

// strs encodes a count, then each string.
func (e enc) strs(ss []string) enc {
	e = e.uint(uint64(len(ss)))
	for _, s := range ss {
		e = e.str(s)
	}
	return e
}

// dec reads fields from a payload. The first error sticks; later reads return
// zero values, so a decoder checks err once at the end.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrMalformed, what)
	}
}

func (d *dec) uint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) > 0 && d.b[0] < 0x80 { // one byte: most lengths, statuses and small IDs
		v := uint64(d.b[0])
		d.b = d.b[1:]
		return v
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) int(what string) int64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) > 0 && d.b[0] < 0x80 { // one byte: zero and small values
		u := uint64(d.b[0])
		d.b = d.b[1:]
		return int64(u>>1) ^ -int64(u&1) // zigzag, as binary.Varint
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) u32(what string) uint32 {
	v := d.uint(what)
	if v > math.MaxUint32 {
		d.fail(what)
		return 0
	}
	return uint32(v)
}

func (d *dec) bool(what string) bool {
	if d.err != nil {
		return false
	}
	if len(d.b) == 0 || d.b[0] > 1 {
		d.fail(what)
		return false
	}
	v := d.b[0] == 1
	d.b = d.b[1:]
	return v
}

// view is bytes without the copy: the result is a slice of the payload.
func (d *dec) view(what string) []byte {
	n := d.uint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	if n == 0 {
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

// strLike is str, returning prev itself when the bytes equal it, so that a
// batch of tasks of one function makes one string, not one per task.
func (d *dec) strLike(prev, what string) string {
	b := d.view(what)
	if string(b) == prev { // compared without allocating
		return prev
	}
	return string(b)
}

func (d *dec) str(what string) string { return string(d.view(what)) }

// strs decodes what strs encoded; nil for none.
func (d *dec) strs(what string) []string {
	n := d.count(what+" count", 1)
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.str(what)
	}
	return ss
}

// count reads a list length and checks that at least min bytes per element
// remain, so a forged count cannot make the decoder allocate a huge slice.
func (d *dec) count(what string, min int) int {
	n := d.uint(what)
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/min) {
		d.fail(what)
		return 0
	}
	return int(n)
}

func (d *dec) end(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes after %s", ErrMalformed, len(d.b), what)
	}
	return d.err
}
