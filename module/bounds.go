package module

import "fmt"

// maxLocals is the most locals one function may declare. Browsers enforce
// the same limit (V8's kV8MaxWasmFunctionLocals), so real modules stay
// under it.
const maxLocals = 50000

// checkBounds walks the binary format's structure and checks every length
// and count against the bytes that are really there, before any decoder
// sees the module.
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
// the validation. It knows the WebAssembly 2.0 binary format, which is what
// the sandbox's engines enable.
func checkBounds(wasm []byte) error {
	r := newReader(wasm)
	for r.more() {
		id, sec := r.section()
		if r.err != nil {
			return fmt.Errorf("section %s: %w", sectionName(id), r.err)
		}
		sec.checkSection(id)
		if sec.err != nil {
			return fmt.Errorf("section %s: %w", sectionName(id), sec.err)
		}
	}
	return r.err
}

// checkSection walks one section's structure.
func (r *reader) checkSection(id byte) {
	switch id {
	case 0: // custom
		r.checkCustom()
	case 1: // type
		r.vec("types", func() {
			if form := r.byte(); form != 0x60 {
				r.fail(fmt.Errorf("type form %#x is not a function type", form))
				return
			}
			r.vec("parameters", func() { r.valType() })
			r.vec("results", func() { r.valType() })
		})
	case 2: // import
		r.vec("imports", func() {
			r.skipName()
			r.skipName()
			r.importDesc()
		})
	case 3: // function
		r.vec("functions", func() { r.u32() })
	case 4: // table
		r.vec("tables", func() { r.valType(); r.limits() })
	case 5: // memory
		r.vec("memories", func() { r.limits() })
	case 6: // global
		r.vec("globals", func() { r.valType(); r.byte(); r.constExpr() })
	case 7: // export
		r.vec("exports", func() { r.skipName(); r.byte(); r.u32() })
	case 8, 12: // start, data count
		r.u32()
	case 9: // element
		r.vec("element segments", r.element)
	case 10: // code
		r.checkCode()
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

// checkCode walks the code section: each body's locals, not its
// instructions.
func (r *reader) checkCode() {
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
}

// checkCustom checks a custom section: its name, and the counts inside the
// "name" section, which wazero decodes.
func (r *reader) checkCustom() {
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
			sub.skipName()
		case 1: // function names
			sub.vec("function names", func() { sub.u32(); sub.skipName() })
		case 2: // local names
			sub.vec("local names", func() {
				sub.u32()
				sub.vec("locals", func() { sub.u32(); sub.skipName() })
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
