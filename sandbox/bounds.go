package sandbox

import (
	"errors"
	"fmt"
)

// maxLocals is the most locals one function may declare. Browsers enforce
// the same limit (V8's kV8MaxWasmFunctionLocals), so real modules stay
// under it.
const maxLocals = 50000

// checkBounds walks the binary format's structure and checks every length
// and count against the bytes that are really there, before wazero decodes
// the module.
//
// wazero's decoder sizes its slices from the counts in the input before it
// reads the elements: a 40-byte module that claims 2^31 imports makes it
// allocate 28 GiB, and the Go runtime then kills the whole host process
// with "fatal error: out of memory", which no recover catches. Likewise a
// function may claim 2^32-1 locals in five bytes. Checked here, every
// allocation the decoder makes is bounded by a small multiple of the input's
// size, and locals by maxLocals.
//
// The walk reads only structure (sections, vectors, names, limits, constant
// expressions), never function bodies; it leaves every other judgement to
// wazero's validation. It knows the WebAssembly 2.0 binary format, which is
// what the sandbox's engines enable.
func checkBounds(wasm []byte) error {
	r := &reader{b: wasm, off: 8, end: len(wasm)}
	for r.off < r.end && r.err == nil {
		id := r.byte()
		sec := r.sub(r.u32())
		if r.err != nil {
			return fmt.Errorf("section %s: %w", sectionName(id), r.err)
		}
		sec.section(id)
		if sec.err != nil {
			return fmt.Errorf("section %s: %w", sectionName(id), sec.err)
		}
	}
	return r.err
}

func sectionName(id byte) string {
	names := []string{"custom", "type", "import", "function", "table", "memory", "global",
		"export", "start", "element", "code", "data", "data_count", "tag"}
	if int(id) < len(names) {
		return names[id]
	}
	return fmt.Sprintf("%#x", id)
}

var errEnd = errors.New("unexpected end of section")

// reader reads b[off:end]. The first problem sets err; after that every
// read returns zero and nothing advances past end.
type reader struct {
	b        []byte
	off, end int
	err      error
}

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

func (r *reader) name() { r.skip(uint64(r.u32())) }

func (r *reader) valType() {
	switch r.byte() {
	case 0x63, 0x64: // (ref null ht), (ref ht): a heap type follows
		r.leb(5)
	}
}

func (r *reader) limits() {
	flags := r.byte()
	width := 5
	if flags&0x04 != 0 { // 64-bit memory
		width = 10
	}
	r.leb(width)
	if flags&0x01 != 0 {
		r.leb(width)
	}
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

func (r *reader) section(id byte) {
	switch id {
	case 0: // custom
		r.u32Name()
	case 1: // type
		r.vec("types", func() {
			if form := r.byte(); form != 0x60 {
				r.fail(fmt.Errorf("type form %#x is not a function type", form))
				return
			}
			r.vec("parameters", r.valType)
			r.vec("results", r.valType)
		})
	case 2: // import
		r.vec("imports", func() {
			r.name()
			r.name()
			switch kind := r.byte(); kind {
			case 0x00:
				r.u32()
			case 0x01:
				r.valType()
				r.limits()
			case 0x02:
				r.limits()
			case 0x03:
				r.valType()
				r.byte()
			case 0x04:
				r.byte()
				r.u32()
			default:
				r.fail(fmt.Errorf("import kind %#x", kind))
			}
		})
	case 3: // function
		r.vec("functions", func() { r.u32() })
	case 4: // table
		r.vec("tables", func() { r.valType(); r.limits() })
	case 5: // memory
		r.vec("memories", r.limits)
	case 6: // global
		r.vec("globals", func() { r.valType(); r.byte(); r.constExpr() })
	case 7: // export
		r.vec("exports", func() { r.name(); r.byte(); r.u32() })
	case 8, 12: // start, data count
		r.u32()
	case 9: // element
		r.vec("element segments", r.element)
	case 10: // code
		i := 0
		r.vec("function bodies", func() {
			body := r.sub(r.u32())
			var locals uint64
			body.vec("locals", func() {
				locals += uint64(body.u32())
				body.valType()
			})
			if body.err == nil && locals > maxLocals {
				body.fail(fmt.Errorf("function body %d declares %d locals; the sandbox allows at most %d", i, locals, maxLocals))
			}
			if body.err != nil {
				r.fail(body.err)
			}
			i++
		})
	case 11: // data
		r.vec("data segments", func() {
			switch flags := r.u32(); flags {
			case 0:
				r.constExpr()
			case 1:
			case 2:
				r.u32()
				r.constExpr()
			default:
				r.fail(fmt.Errorf("data segment flags %d", flags))
				return
			}
			r.skip(uint64(r.u32()))
		})
	case 13: // tag
		r.vec("tags", func() { r.byte(); r.u32() })
	default:
		// wazero refuses unknown sections before it allocates anything.
		r.off = r.end
	}
}

// u32Name checks a custom section: its name, and the counts inside the
// "name" section, which wazero decodes.
func (r *reader) u32Name() {
	n := r.u32()
	if r.err != nil || uint64(n) > uint64(r.left()) {
		r.fail(fmt.Errorf("custom section name of %d bytes, %d left", n, r.left()))
		return
	}
	name := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	if name != "name" {
		r.off = r.end
		return
	}
	for r.left() > 0 && r.err == nil {
		id := r.byte()
		sub := r.sub(r.u32())
		switch id {
		case 0: // module name
			sub.name()
		case 1: // function names
			sub.vec("function names", func() { sub.u32(); sub.name() })
		case 2: // local names
			sub.vec("local names", func() {
				sub.u32()
				sub.vec("locals", func() { sub.u32(); sub.name() })
			})
		}
		if sub.err != nil {
			r.fail(sub.err)
		}
	}
}

// element skips one element segment.
func (r *reader) element() {
	flags := r.u32()
	if flags > 7 {
		r.fail(fmt.Errorf("element segment flags %d", flags))
		return
	}
	if flags&0x02 != 0 && flags&0x01 == 0 { // 2, 6: explicit table index
		r.u32()
	}
	if flags&0x01 == 0 { // 0, 2, 4, 6: active, with an offset
		r.constExpr()
	}
	if flags != 0 && flags != 4 { // an element kind or reference type
		r.valType()
	}
	if flags&0x04 == 0 {
		r.vec("function indexes", func() { r.u32() })
	} else {
		r.vec("element expressions", r.constExpr)
	}
}
