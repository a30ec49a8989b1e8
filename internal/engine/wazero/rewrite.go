package wazero

import (
	"errors"
	"fmt"
	"strconv"
)

// globalExportPrefix names the exports that exportGlobals adds. The dot
// keeps them apart from any name a guest's toolchain makes for a function
// (safepool_*, Go's and C's identifiers).
const globalExportPrefix = "safepool.g"

// exportGlobals returns wasm with an export added for every mutable global
// it defines, named globalExportPrefix and the global's index, so that the
// host can save and restore them (wazero's API reaches only exported
// globals), and the names of those exports.
//
// It also checks that the rest of an instance's state lies in linear
// memory and globals: a module whose code changes a table (table.set,
// table.grow, table.init, table.copy, table.fill) or drops a segment
// (data.drop, elem.drop), has a shared memory, or a mutable global whose
// type is not a number, gets an error saying so, and its instances are
// made anew for every task instead of being reset.
//
// The code section is decoded instruction by instruction (not searched for
// bytes, which immediates would match by chance); an instruction it does
// not know is such an error too.
func exportGlobals(wasm []byte) ([]byte, []string, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, nil, errors.New("not a WebAssembly module")
	}
	var (
		imported   uint32   // globals imported, which come first in the index space
		mutable    []uint32 // indices of the mutable globals the module defines
		exportSec  = -1     // offset of the export section's id byte
		exportEnd  int
		insertAt   = -1 // where a new export section goes when there is none
		exportName = map[string]bool{}
		exports    uint32 // entries of the export section
	)
	r := &reader{b: wasm, off: 8}
	for r.off < len(wasm) {
		start := r.off
		id := r.byte()
		size := r.u32()
		if r.err != nil || uint64(r.off)+uint64(size) > uint64(len(wasm)) {
			return nil, nil, errors.New("a section runs past the end of the module")
		}
		s := &reader{b: wasm[:r.off+int(size)], off: r.off}
		r.off += int(size)
		var err error
		switch id {
		case 2:
			imported, err = readImports(s)
		case 5:
			err = readMemories(s)
		case 6:
			mutable, err = readGlobals(s, imported)
		case 7:
			exportSec, exportEnd = start, r.off
			exports, err = readExports(s, exportName)
		case 10:
			err = scanCode(s)
		}
		if err != nil {
			return nil, nil, err
		}
		if insertAt < 0 && id != 0 && exportSec < 0 && laterThanExport(id) {
			insertAt = start
		}
	}
	if insertAt < 0 {
		insertAt = len(wasm)
	}
	names := make([]string, len(mutable))
	var entries []byte
	for i, idx := range mutable {
		names[i] = globalExportPrefix + strconv.FormatUint(uint64(idx), 10)
		if exportName[names[i]] {
			return nil, nil, fmt.Errorf("the module already exports %s", names[i])
		}
		entries = appendName(entries, names[i])
		entries = append(entries, 3) // a global
		entries = appendU32(entries, idx)
	}
	if len(mutable) == 0 {
		return wasm, nil, nil
	}
	count := exports + uint32(len(mutable))
	body := appendU32(nil, count)
	from, to := insertAt, insertAt
	if exportSec >= 0 {
		// Keep the old entries: skip the id, the size and the count.
		old := &reader{b: wasm, off: exportSec + 1}
		old.u32()
		old.u32()
		body = append(body, wasm[old.off:exportEnd]...)
		from, to = exportSec, exportEnd
	}
	body = append(body, entries...)
	out := make([]byte, 0, len(wasm)+len(entries)+16)
	out = append(out, wasm[:from]...)
	out = append(out, 7)
	out = appendU32(out, uint32(len(body)))
	out = append(out, body...)
	out = append(out, wasm[to:]...)
	return out, names, nil
}

// laterThanExport reports whether a section with this id comes after the
// export section (start, element, data count, code, data).
func laterThanExport(id byte) bool {
	switch id {
	case 8, 9, 10, 11, 12:
		return true
	}
	return false
}

func readImports(s *reader) (globals uint32, err error) {
	for n := s.u32(); n > 0 && s.err == nil; n-- {
		s.name()
		s.name()
		switch kind := s.byte(); kind {
		case 0: // function
			s.u32()
		case 1: // table
			s.byte()
			s.limits()
		case 2: // memory
			if s.limits()&2 != 0 {
				return 0, errors.New("the module imports a shared memory")
			}
		case 3: // global
			s.byte()
			if s.byte() != 0 {
				return 0, errors.New("the module imports a mutable global, which another module could change")
			}
			globals++
		default:
			return 0, fmt.Errorf("unknown import kind %d", kind)
		}
	}
	return globals, s.done("import")
}

func readMemories(s *reader) error {
	for n := s.u32(); n > 0 && s.err == nil; n-- {
		if s.limits()&2 != 0 {
			return errors.New("the module has a shared memory")
		}
	}
	return s.done("memory")
}

func readGlobals(s *reader, imported uint32) ([]uint32, error) {
	var mutable []uint32
	n := s.u32()
	for i := uint32(0); i < n && s.err == nil; i++ {
		typ, mut := s.byte(), s.byte()
		if mut == 1 {
			switch typ {
			case 0x7F, 0x7E, 0x7D, 0x7C: // i32, i64, f32, f64
			default:
				return nil, fmt.Errorf("global %d is mutable and of type 0x%x, which the host cannot restore", imported+i, typ)
			}
			mutable = append(mutable, imported+i)
		}
		if err := skipConstExpr(s); err != nil {
			return nil, err
		}
	}
	return mutable, s.done("global")
}

// skipConstExpr reads a global's initializer, up to its end.
func skipConstExpr(s *reader) error {
	for s.err == nil {
		switch op := s.byte(); op {
		case 0x0B:
			return nil
		case 0x41, 0x23, 0xD2: // i32.const, global.get, ref.func
			s.leb()
		case 0x42:
			s.leb()
		case 0x43:
			s.skip(4)
		case 0x44:
			s.skip(8)
		case 0xD0:
			s.byte()
		case 0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E: // extended constant expressions
		default:
			return fmt.Errorf("unknown instruction 0x%x in a global's initializer", op)
		}
	}
	return s.err
}

func readExports(s *reader, names map[string]bool) (uint32, error) {
	n := s.u32()
	for i := uint32(0); i < n && s.err == nil; i++ {
		names[s.name()] = true
		s.byte()
		s.u32()
	}
	return n, s.done("export")
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	return append(appendU32(b, uint32(len(s))), s...)
}

// reader decodes a module's bytes; the first error sticks, and every read
// after it returns zero.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(msg string) {
	if r.err == nil {
		r.err = errors.New(msg)
	}
	r.off = len(r.b)
}

func (r *reader) byte() byte {
	if r.off >= len(r.b) {
		r.fail("unexpected end of a section")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) skip(n int) {
	if len(r.b)-r.off < n {
		r.fail("unexpected end of a section")
		return
	}
	r.off += n
}

// leb reads a LEB128 number of up to 10 bytes and returns its low 64 bits;
// callers that need it signed or narrower only skip it.
func (r *reader) leb() uint64 {
	var v uint64
	for shift := uint(0); shift < 70; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7F) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail("a number is too long")
	return 0
}

func (r *reader) u32() uint32 {
	v := r.leb()
	if v > 1<<32-1 {
		r.fail("a number is too big")
		return 0
	}
	return uint32(v)
}

func (r *reader) name() string {
	n := r.u32()
	if r.err != nil || uint64(len(r.b)-r.off) < uint64(n) {
		r.fail("a name runs past the end of its section")
		return ""
	}
	s := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	return s
}

// limits reads a table's or a memory's limits and returns their flags.
func (r *reader) limits() byte {
	flags := r.byte()
	r.leb()
	if flags&1 != 0 {
		r.leb()
	}
	if flags > 7 {
		r.fail(fmt.Sprintf("unknown limits flags 0x%x", flags))
	}
	return flags
}

// done checks that a section was read to its end.
func (r *reader) done(section string) error {
	if r.err != nil {
		return fmt.Errorf("%s section: %w", section, r.err)
	}
	if r.off != len(r.b) {
		return fmt.Errorf("%s section: %d bytes left over", section, len(r.b)-r.off)
	}
	return nil
}
