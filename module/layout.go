package module

import "fmt"

// layout is what a module's binary says about its interface: the parts of
// the type, import, function, export, memory and custom sections that the
// checks and the listing read. Function bodies are never read.
type layout struct {
	types   []funcType
	imports []importEntry
	// funcs is the type index of each function in the function index
	// space: the imported functions, then those the module defines.
	funcs   []uint32
	exports []exportEntry
	// memoryPages is the largest minimum, in pages, of the memories the
	// module defines: what its instantiation allocates before any of its
	// code runs.
	memoryPages uint64
	customs     []string // the names of the custom sections, in order
	undefined   []byte   // the ids of sections the binary format does not define
}

// funcType is a function's signature, as value types in their binary
// encoding (which is also wazero's api.ValueType).
type funcType struct{ params, results []byte }

type importEntry struct {
	module, name string
	kind         byte
	typ          uint32 // functions only: the type index
}

type exportEntry struct {
	name  string
	kind  byte
	index uint32
}

// readLayout reads the layout of wasm, which must start with the 8-byte
// header.
func readLayout(wasm []byte) (*layout, error) {
	l := &layout{}
	r := newReader(wasm)
	for r.more() {
		id, sec := r.section()
		if r.err != nil {
			return nil, fmt.Errorf("section %s: %w", sectionName(id), r.err)
		}
		l.read(id, sec)
		if sec.err != nil {
			return nil, fmt.Errorf("section %s: %w", sectionName(id), sec.err)
		}
	}
	return l, r.err
}

// read reads the parts of one section the layout keeps.
func (l *layout) read(id byte, r *reader) {
	switch id {
	case 0: // custom
		l.customs = append(l.customs, r.name())
	case 1: // type
		r.vec("types", func() {
			if form := r.byte(); form != 0x60 {
				r.fail(fmt.Errorf("type form %#x is not a function type", form))
				return
			}
			params := r.valTypes("parameters")
			l.types = append(l.types, funcType{params: params, results: r.valTypes("results")})
		})
	case 2: // import
		r.vec("imports", func() {
			im := importEntry{module: r.name(), name: r.name()}
			im.kind, im.typ = r.importDesc()
			l.imports = append(l.imports, im)
			if im.kind == kindFunc {
				l.funcs = append(l.funcs, im.typ)
			}
		})
	case 3: // function
		r.vec("functions", func() { l.funcs = append(l.funcs, r.u32()) })
	case 5: // memory
		r.vec("memories", func() { l.memoryPages = max(l.memoryPages, r.limits()) })
	case 7: // export
		r.vec("exports", func() {
			l.exports = append(l.exports, exportEntry{name: r.name(), kind: r.byte(), index: r.u32()})
		})
	case 4, 6, 8, 9, 10, 11, 12: // table, global, start, element, code, data, data count: nothing to keep
	default:
		l.undefined = append(l.undefined, id)
	}
}

// sound checks what the layout shows of the module's validity: every
// section is one the binary format defines, and every exported function,
// and its type, exists. Inspect's checks would misjudge a module that is
// not sound (an export that points nowhere would count as missing), so
// such a module is left to the validation, which says what is wrong.
func (l *layout) sound() error {
	if len(l.undefined) > 0 {
		return fmt.Errorf("section id %#x is not defined", l.undefined[0])
	}
	for _, e := range l.exports {
		if e.kind != kindFunc {
			continue
		}
		if _, ok := l.funcTypeOf(e.index); !ok {
			return fmt.Errorf("export %q: function %d, or its type, does not exist", e.name, e.index)
		}
	}
	return nil
}

// funcTypeOf returns the type of the function at index in the function
// index space.
func (l *layout) funcTypeOf(index uint32) (funcType, bool) {
	if uint64(index) >= uint64(len(l.funcs)) {
		return funcType{}, false
	}
	return l.typeAt(l.funcs[index])
}

func (l *layout) typeAt(i uint32) (funcType, bool) {
	if uint64(i) >= uint64(len(l.types)) {
		return funcType{}, false
	}
	return l.types[i], true
}

// funcExports maps the name of each exported function to its type. Exports
// whose type cannot be found (in a module that failed validation) are left
// out.
func (l *layout) funcExports() map[string]funcType {
	m := map[string]funcType{}
	for _, e := range l.exports {
		if e.kind != kindFunc {
			continue
		}
		if t, ok := l.funcTypeOf(e.index); ok {
			m[e.name] = t
		}
	}
	return m
}

// exportsMemory reports whether the module exports a memory called name.
func (l *layout) exportsMemory(name string) bool {
	for _, e := range l.exports {
		if e.kind == kindMemory && e.name == name {
			return true
		}
	}
	return false
}

// hasCustom reports whether the module has a custom section called name.
func (l *layout) hasCustom(name string) bool {
	for _, c := range l.customs {
		if c == name {
			return true
		}
	}
	return false
}

// goBuildID names the custom section the Go linker writes into every module.
const goBuildID = "go:buildid"
