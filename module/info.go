package module

import (
	"fmt"
	"slices"
	"strings"

	"github.com/safepool/safepool/internal/wire"
)

// ABIVersion is the guest ABI version safepool's workers speak. See
// guest/ABI.md.
const ABIVersion = 1

// Kind says how a module runs tasks. The zero Kind is a module that cannot
// run; it prints as "unusable".
type Kind uint8

// Module kinds.
const (
	// KindSDK modules export the safepool guest ABI; one instance serves many
	// tasks.
	KindSDK = Kind(wire.KindSDK)
	// KindCommand modules are plain WASI commands: input on stdin, output on
	// stdout, a fresh instance per task.
	KindCommand = Kind(wire.KindCommand)
)

func (k Kind) String() string {
	switch k {
	case KindSDK:
		return "sdk"
	case KindCommand:
		return "command"
	}
	return "unusable"
}

// Func describes an imported or exported function.
type Func struct {
	Module  string // import module; "" for exports
	Name    string
	Params  []string // value types: i32, i64, f32, f64, v128, funcref, externref
	Results []string
}

// String writes f as `safepool inspect` lists it: "safepool.result(i32,
// i32, i32) -> ()".
func (f Func) String() string {
	name := f.Name
	if f.Module != "" {
		name = f.Module + "." + f.Name
	}
	return fmt.Sprintf("%s(%s) -> (%s)", name, strings.Join(f.Params, ", "), strings.Join(f.Results, ", "))
}

// Info is what Inspect learned about a module.
type Info struct {
	Kind    Kind
	Batch   bool   // exports safepool_batch
	Imports []Func // the imported functions, in the module's order
	Exports []Func // the exported functions, by name
	// MemoryPages is the largest minimum, in 64 KiB pages, of the memories
	// the module defines: the linear memory its instantiation allocates
	// before any of its code runs.
	MemoryPages uint64
}

// Describe lists what wasm imports and exports as far as its bytes can be
// read, without any of Inspect's checks: for showing a module that Inspect
// refused, such as the import at fault. The Kind of the Info it returns is
// always zero. It returns nil when wasm is not WebAssembly or its sections
// do not parse. Like Inspect, it is safe on untrusted input.
func Describe(wasm []byte) *Info {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil
	}
	l, err := readLayout(wasm)
	if err != nil {
		return nil
	}
	return l.describe()
}

// describe lists the layout's imported and exported functions.
func (l *layout) describe() *Info {
	info := &Info{MemoryPages: l.memoryPages}
	for _, im := range l.imports {
		if im.kind != kindFunc {
			continue
		}
		if t, ok := l.typeAt(im.typ); ok {
			info.Imports = append(info.Imports, funcOf(im.module, im.name, t))
		}
	}
	for name, t := range l.funcExports() {
		info.Exports = append(info.Exports, funcOf("", name, t))
	}
	slices.SortFunc(info.Exports, func(a, b Func) int { return strings.Compare(a.Name, b.Name) })
	return info
}

func funcOf(mod, name string, t funcType) Func {
	return Func{Module: mod, Name: name, Params: typeNames(t.params), Results: typeNames(t.results)}
}

func typeNames(ts []byte) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = typeName(t)
	}
	return out
}

// typeName names a value type by its binary encoding.
func typeName(t byte) string {
	switch t {
	case 0x7f:
		return "i32"
	case 0x7e:
		return "i64"
	case 0x7d:
		return "f32"
	case 0x7c:
		return "f64"
	case 0x7b:
		return "v128"
	case 0x70:
		return "funcref"
	case 0x6f:
		return "externref"
	}
	return "unknown"
}
