package testguest

// A tiny WebAssembly binary encoder, so that tests can make exactly the
// module a case needs (a missing export, a wrongly typed import) without a
// toolchain and without committing a file per case.

// Value types.
const (
	I32 byte = 0x7f
	I64 byte = 0x7e
)

// Import is an imported function, or, with Kind set, another kind of import.
type Import struct {
	Module, Name    string
	Params, Results []byte
	// Kind is "" for a function, or "memory", "table" or "global".
	Kind string
}

// Func is a function the module defines. Each result is the constant
// Return (an i32 or i64 of that value). With Trap set it executes
// unreachable instead; with NoReturn it pushes nothing, which fails
// validation when it has results.
type Func struct {
	Export          string // "" keeps it private
	Params, Results []byte
	Return          int64
	Trap            bool
	NoReturn        bool
}

// Module describes a module for Encode.
type Module struct {
	Imports []Import
	Funcs   []Func
	// Memory, when set, defines one memory of Memory pages, exported under
	// MemoryExport if that is not empty.
	Memory       uint32
	MemoryExport string
	// Start, when set, makes function index Start-1 (counting imports
	// first) the module's start function.
	Start uint32
}

// SDK returns a module with the four exports of an SDK module and an
// exported memory; each function returns 0 except safepool_abi_version,
// which returns 1. Callers then break it in the way a case needs.
func SDK() Module {
	return Module{
		Imports: []Import{{Module: "safepool", Name: "result", Params: []byte{I32, I32, I32}}},
		Funcs: []Func{
			{Export: "safepool_abi_version", Results: []byte{I32}, Return: 1},
			{Export: "safepool_alloc", Params: []byte{I32}, Results: []byte{I32}, Return: 1024},
			{Export: "safepool_call", Params: []byte{I32, I32, I32, I32}},
			{Export: "safepool_handlers"},
		},
		Memory:       1,
		MemoryExport: "memory",
	}
}

// Encode returns m in the binary format.
func (m Module) Encode() []byte {
	type sig struct{ params, results string }
	var types []sig
	typeIdx := func(params, results []byte) uint32 {
		s := sig{string(params), string(results)}
		for i, t := range types {
			if t == s {
				return uint32(i)
			}
		}
		types = append(types, s)
		return uint32(len(types) - 1)
	}

	var imports, funcs, exports, code []byte
	nImports, nExports := 0, 0
	for _, im := range m.Imports {
		nImports++
		imports = appendName(appendName(imports, im.Module), im.Name)
		switch im.Kind {
		case "":
			imports = appendU32(append(imports, 0x00), typeIdx(im.Params, im.Results))
		case "table":
			imports = append(imports, 0x01, 0x70, 0x00, 0x01) // funcref, min 1
		case "memory":
			imports = append(imports, 0x02, 0x00, 0x01) // min 1 page
		case "global":
			imports = append(imports, 0x03, I32, 0x00) // const i32
		}
	}
	funcImports := 0
	for _, im := range m.Imports {
		if im.Kind == "" {
			funcImports++
		}
	}
	for i, f := range m.Funcs {
		funcs = appendU32(funcs, typeIdx(f.Params, f.Results))
		if f.Export != "" {
			nExports++
			exports = appendU32(append(appendName(exports, f.Export), 0x00), uint32(funcImports+i))
		}
		var body []byte
		body = append(body, 0x00) // no locals
		switch {
		case f.Trap:
			body = append(body, 0x00) // unreachable
		case f.NoReturn:
		default:
			for _, r := range f.Results {
				if r == I64 {
					body = appendS64(append(body, 0x42), f.Return)
				} else {
					body = appendS64(append(body, 0x41), int64(int32(f.Return)))
				}
			}
		}
		body = append(body, 0x0b)
		code = append(appendU32(code, uint32(len(body))), body...)
	}
	if m.MemoryExport != "" {
		nExports++
		exports = append(appendName(exports, m.MemoryExport), 0x02, 0x00)
	}

	var typeSec []byte
	for _, t := range types {
		typeSec = append(typeSec, 0x60)
		typeSec = append(appendU32(typeSec, uint32(len(t.params))), t.params...)
		typeSec = append(appendU32(typeSec, uint32(len(t.results))), t.results...)
	}

	out := []byte("\x00asm\x01\x00\x00\x00")
	out = Section(out, 1, appendU32(nil, uint32(len(types)), typeSec...))
	if nImports > 0 {
		out = Section(out, 2, appendU32(nil, uint32(nImports), imports...))
	}
	if len(m.Funcs) > 0 {
		out = Section(out, 3, appendU32(nil, uint32(len(m.Funcs)), funcs...))
	}
	if m.Memory > 0 {
		out = Section(out, 5, appendU32([]byte{0x01, 0x00}, m.Memory))
	}
	if nExports > 0 {
		out = Section(out, 7, appendU32(nil, uint32(nExports), exports...))
	}
	if m.Start > 0 {
		out = Section(out, 8, appendU32(nil, m.Start-1))
	}
	if len(m.Funcs) > 0 {
		out = Section(out, 10, appendU32(nil, uint32(len(m.Funcs)), code...))
	}
	return out
}

// Section appends a section with the given id and contents to b.
func Section(b []byte, id byte, contents []byte) []byte {
	return append(appendU32(append(b, id), uint32(len(contents))), contents...)
}

func appendName(b []byte, s string) []byte { return append(appendU32(b, uint32(len(s))), s...) }

// appendU32 appends v as unsigned LEB128, then more.
func appendU32(b []byte, v uint32, more ...byte) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			c |= 0x80
		}
		b = append(b, c)
		if v == 0 {
			return append(b, more...)
		}
	}
}

// appendS64 appends v as signed LEB128.
func appendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		done := (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0)
		if !done {
			c |= 0x80
		}
		b = append(b, c)
		if done {
			return b
		}
	}
}
