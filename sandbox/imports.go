package sandbox

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// wasiFuncs is every function the worker's WASI module exports, with its
// signature, read from wazero itself so that it cannot drift from what a
// worker really provides.
var wasiFuncs = sync.OnceValue(func() map[string]api.FunctionDefinition {
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	cm, err := wasi_snapshot_preview1.NewBuilder(r).Compile(ctx)
	if err != nil {
		panic("sandbox: compile the WASI host module: " + err.Error()) // a wazero bug, not an input problem
	}
	return cm.ExportedFunctions()
})

// checkWASI checks one wasi_snapshot_preview1 import against what the worker
// provides, so that a module importing a function WASI preview 1 lacks
// (such as sock_open) fails at load, not in the worker.
func checkWASI(f Func, d api.FunctionDefinition) error {
	want, ok := wasiFuncs()[f.Name]
	if !ok {
		return fmt.Errorf("%w: %s; WASI preview 1 has no such function, and the sandbox adds none", ErrForbiddenImport, f)
	}
	if !slices.Equal(want.ParamTypes(), d.ParamTypes()) || !slices.Equal(want.ResultTypes(), d.ResultTypes()) {
		return fmt.Errorf("%w: import %s, want %s", ErrBadSignature, f, funcOf("wasi_snapshot_preview1", f.Name, want))
	}
	return nil
}

// checkOtherImports rejects imports of tables and globals, which wazero's
// CompiledModule does not list: no module the sandbox provides exports one,
// so such a module could never be instantiated. wasm must already have
// passed validation.
func checkOtherImports(wasm []byte) error {
	p := parser{b: wasm, off: 8}
	for p.off < len(p.b) {
		id := p.byte()
		size := int(p.u32())
		end := p.off + size
		if p.err != nil || end > len(p.b) || end < p.off {
			return nil // validation already passed; leave odd encodings to it
		}
		if id != 2 { // not the import section
			p.off = end
			continue
		}
		for n := p.u32(); n > 0 && p.err == nil; n-- {
			mod, name := p.name(), p.name()
			kind := p.byte()
			switch kind {
			case 0x00: // function: type index
				p.u32()
			case 0x01: // table: reference type, limits
				p.byte()
				p.limits()
				return fmt.Errorf("%w: table %s.%s; the sandbox provides no tables: define the table in the module", ErrForbiddenImport, mod, name)
			case 0x02: // memory: limits (checked elsewhere, with a better message)
				p.limits()
			case 0x03: // global: value type, mutability
				return fmt.Errorf("%w: global %s.%s; the sandbox provides no globals", ErrForbiddenImport, mod, name)
			default:
				return fmt.Errorf("%w: import %s.%s of kind %#x; only functions from wasi_snapshot_preview1 and safepool are provided", ErrForbiddenImport, mod, name, kind)
			}
		}
		return nil
	}
	return nil
}

// parser reads the few parts of the binary format checkOtherImports needs.
// Reads past the end set err and return zeros.
type parser struct {
	b   []byte
	off int
	err error
}

func (p *parser) byte() byte {
	if p.off >= len(p.b) {
		p.err = fmt.Errorf("unexpected end")
		return 0
	}
	c := p.b[p.off]
	p.off++
	return c
}

func (p *parser) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := p.byte()
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	p.err = fmt.Errorf("bad LEB128")
	return 0
}

func (p *parser) name() string {
	n := int(p.u32())
	if p.err != nil || n > len(p.b)-p.off {
		p.err = fmt.Errorf("unexpected end")
		return ""
	}
	s := string(p.b[p.off : p.off+n])
	p.off += n
	return s
}

func (p *parser) limits() {
	flags := p.byte()
	p.u32()
	if flags&1 != 0 {
		p.u32()
	}
}
