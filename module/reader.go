package module

import (
	"errors"
	"fmt"
)

// reader is the one reader of the WebAssembly binary format in this
// package: the bounds check, the layout and the listing all read through
// it. It reads b[off:end]. Every read is checked against the bytes that are
// really there, and every count against the bytes left, so that nothing it
// allocates can exceed the input's size. The first problem sets err; after
// that every read returns zero and nothing advances past end.
type reader struct {
	b        []byte
	off, end int
	err      error
}

// newReader reads the sections of wasm, after its 8-byte header.
func newReader(wasm []byte) *reader {
	if len(wasm) < 8 {
		return &reader{b: wasm, off: len(wasm), end: len(wasm), err: errEnd}
	}
	return &reader{b: wasm, off: 8, end: len(wasm)}
}

var errEnd = errors.New("unexpected end of section")

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.off = r.end
}

func (r *reader) left() int { return r.end - r.off }

func (r *reader) byte() byte {
	if r.err != nil || r.off >= r.end {
		r.fail(errEnd)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

// leb reads an LEB128 number of at most maxBytes bytes, as unsigned.
func (r *reader) leb(maxBytes int) uint64 {
	// Most numbers in a module take one byte.
	if r.err == nil && r.off < r.end && r.b[r.off] < 0x80 {
		r.off++
		return uint64(r.b[r.off-1])
	}
	var v uint64
	for i := 0; i < maxBytes; i++ {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail(errors.New("LEB128 number too long"))
	return 0
}

func (r *reader) u32() uint32 { return uint32(r.leb(5)) }

// skip skips n bytes that must be there.
func (r *reader) skip(n uint64) {
	if uint64(r.left()) < n {
		r.fail(fmt.Errorf("%d bytes claimed, %d left", n, r.left()))
		return
	}
	r.off += int(n)
}

// bytes reads n bytes that must be there. The result shares the input.
func (r *reader) bytes(n uint64) []byte {
	start := r.off
	r.skip(n)
	if r.err != nil {
		return nil
	}
	return r.b[start:r.off]
}

// sub returns a reader for the next n bytes and skips them here.
func (r *reader) sub(n uint32) *reader {
	s := &reader{b: r.b, off: r.off, end: r.off}
	r.skip(uint64(n))
	if r.err == nil {
		s.end = r.off
	} else {
		s.err = r.err
	}
	return s
}

// more reports whether there is more to read.
func (r *reader) more() bool { return r.err == nil && r.off < r.end }

// section reads the next section's id and a reader of its contents. When
// the section does not fit in the input, r.err says why.
func (r *reader) section() (id byte, sec *reader) {
	id = r.byte()
	return id, r.sub(r.u32())
}

// vec reads a count and calls elem that many times. Every element takes at
// least one byte, so a count above the bytes left is a lie.
func (r *reader) vec(what string, elem func()) {
	n := r.u32()
	if r.err == nil && uint64(n) > uint64(r.left()) {
		r.fail(fmt.Errorf("%s: count %d is more than the %d bytes left", what, n, r.left()))
	}
	for ; n > 0 && r.err == nil; n-- {
		elem()
	}
}

// name reads a name.
func (r *reader) name() string { return string(r.bytes(uint64(r.u32()))) }

// skipName skips a name without copying it.
func (r *reader) skipName() { r.skip(uint64(r.u32())) }

// valType reads a value type and returns its first byte.
func (r *reader) valType() byte {
	t := r.byte()
	switch t {
	case 0x63, 0x64: // (ref null ht), (ref ht): a heap type follows
		r.leb(5)
	}
	return t
}

// valTypes reads a vector of value types.
func (r *reader) valTypes(what string) []byte {
	var ts []byte
	r.vec(what, func() { ts = append(ts, r.valType()) })
	return ts
}

// limits reads a table's or memory's limits and returns the minimum.
func (r *reader) limits() uint64 {
	flags := r.byte()
	width := 5
	if flags&0x04 != 0 { // 64-bit memory
		width = 10
	}
	minimum := r.leb(width)
	if flags&0x01 != 0 {
		r.leb(width)
	}
	return minimum
}

// constExpr skips a constant expression up to and including its end.
func (r *reader) constExpr() {
	for r.err == nil {
		switch op := r.byte(); op {
		case 0x0b: // end
			return
		case 0x41, 0x23, 0xd2: // i32.const, global.get, ref.func
			r.leb(5)
		case 0x42: // i64.const
			r.leb(10)
		case 0x43:
			r.skip(4)
		case 0x44:
			r.skip(8)
		case 0xd0: // ref.null
			r.leb(5)
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended constant arithmetic
		case 0xfd: // v128.const
			if r.u32() != 0x0c {
				r.fail(errors.New("unsupported instruction in a constant expression"))
				return
			}
			r.skip(16)
		default:
			r.fail(fmt.Errorf("unsupported instruction %#x in a constant expression", op))
			return
		}
	}
}

// importDesc reads an import's description after its names and returns its
// kind and, for a function, its type index.
func (r *reader) importDesc() (kind byte, typ uint32) {
	switch kind = r.byte(); kind {
	case kindFunc:
		typ = r.u32()
	case kindTable:
		r.valType()
		r.limits()
	case kindMemory:
		r.limits()
	case kindGlobal:
		r.valType()
		r.byte()
	case kindTag:
		r.byte()
		r.u32()
	default:
		r.fail(fmt.Errorf("import kind %#x", kind))
	}
	return kind, typ
}

// External kinds, as imports and exports encode them.
const (
	kindFunc   = 0x00
	kindTable  = 0x01
	kindMemory = 0x02
	kindGlobal = 0x03
	kindTag    = 0x04
)

func sectionName(id byte) string {
	names := []string{"custom", "type", "import", "function", "table", "memory", "global",
		"export", "start", "element", "code", "data", "data_count", "tag"}
	if int(id) < len(names) {
		return names[id]
	}
	return fmt.Sprintf("%#x", id)
}
