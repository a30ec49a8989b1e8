package testguest

import (
	"encoding/binary"
	"testing"

	"github.com/safepool/safepool/module"
)

// BadModule is a module that safepool must refuse at load time.
type BadModule struct {
	Name string
	Wasm []byte
	// Is is the error that module.Inspect's error wraps. It is nil
	// for modules that are well formed but fail when a worker starts them
	// (a wrong ABI version, a start-up that traps): Inspect accepts those,
	// and pool.New must refuse them.
	Is error
	// Want is text the error must contain: the part that tells the user
	// what is wrong (an import's name, an export's name).
	Want string
}

// Malformed returns the corpus of bad modules: not wasm, truncated, broken
// sections, missing or wrongly typed exports, imports the sandbox does not
// provide, and modules that fail in the worker.
func Malformed(tb testing.TB) []BadModule {
	tb.Helper()
	good := Bytes(tb, "wsquare")
	header := []byte("\x00asm\x01\x00\x00\x00")
	sdk := func(edit func(*Module)) []byte {
		m := SDK()
		edit(&m)
		return m.Encode()
	}
	without := func(name string) []byte {
		return sdk(func(m *Module) {
			for i, f := range m.Funcs {
				if f.Export == name {
					m.Funcs[i].Export = ""
				}
			}
		})
	}
	retype := func(name string, params, results []byte) []byte {
		return sdk(func(m *Module) {
			for i, f := range m.Funcs {
				if f.Export == name {
					m.Funcs[i].Params, m.Funcs[i].Results = params, results
				}
			}
		})
	}
	importing := func(im Import) []byte {
		return sdk(func(m *Module) { m.Imports = append(m.Imports, im) })
	}
	wasiFdWrite := Import{Module: "wasi_snapshot_preview1", Name: "fd_write", Params: []byte{I32, I32, I32, I32}, Results: []byte{I32}}
	badSection := func(id byte, contents []byte) []byte { return Section(append([]byte(nil), header...), id, contents) }
	hugeSize := append(append([]byte(nil), header...), 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00)
	overlong := append(append([]byte(nil), header...), 0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00)
	withStart := sdk(func(m *Module) { m.Funcs = append(m.Funcs, Func{Export: "_start"}) })
	goBuildID := Section(nil, 0, append(appendName(nil, "go:buildid"), "x"...))
	v2 := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(v2[4:], 2)

	return []BadModule{
		// Not wasm at all.
		{"empty", nil, module.ErrNotWasm, "magic bytes"},
		{"text", []byte("hello world, this is not wasm\n"), module.ErrNotWasm, "magic bytes"},
		{"shell script", []byte("#!/bin/sh\necho hi\n"), module.ErrNotWasm, "magic bytes"},
		{"ELF", []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"), module.ErrNotWasm, "magic bytes"},
		{"magic only", []byte("\x00asm"), module.ErrNotWasm, "magic bytes"},
		// Broken binaries.
		{"version 2", v2, module.ErrInvalidModule, "version"},
		{"header only", header, module.ErrNotTaskModule, "neither"},
		{"truncated in the header", good[:6], module.ErrNotWasm, "magic bytes"},
		{"truncated after the header", good[:9], module.ErrInvalidModule, ""},
		{"truncated at a quarter", good[:len(good)/4], module.ErrInvalidModule, ""},
		{"truncated at a half", good[:len(good)/2], module.ErrInvalidModule, ""},
		{"last byte missing", good[:len(good)-1], module.ErrInvalidModule, ""},
		{"unknown section id", badSection(0x2a, []byte{1, 2, 3}), module.ErrInvalidModule, ""},
		{"section larger than the file", hugeSize, module.ErrInvalidModule, ""},
		{"overlong LEB128", overlong, module.ErrInvalidModule, ""},
		{"garbage type section", badSection(1, []byte{0x01, 0x55, 0x00, 0x00}), module.ErrInvalidModule, ""},
		{"function without code", func() []byte {
			b := SDK().Encode()
			// Cut the code section (the last one) off: the function section
			// then promises bodies that never come.
			return b[:len(b)-codeSectionLen(SDK())]
		}(), module.ErrInvalidModule, ""},
		{"body of the wrong type", sdk(func(m *Module) { m.Funcs[0].NoReturn = true }), module.ErrInvalidModule, ""},
		// Counts that promise more than the file holds. Decoded as they
		// stand, each makes the decoder allocate gigabytes from a few bytes.
		{"two billion imports", badSection(2, []byte{0xff, 0xff, 0xff, 0xff, 0x07, 0x00}), module.ErrInvalidModule, "count 2147483647"},
		{"two billion exports", badSection(7, []byte{0xff, 0xff, 0xff, 0xff, 0x07, 0x00}), module.ErrInvalidModule, "count 2147483647"},
		{"four billion locals", locals(0xffffffff), module.ErrInvalidModule, "4294967295 locals"},
		{"one local too many", locals(50001), module.ErrInvalidModule, "at most 50000"},
		{"custom section name of 4 GiB", badSection(0, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 'x'}), module.ErrInvalidModule, "custom section name"},
		{"data segment of 4 GiB", append(Section(Section(append([]byte(nil), header...), 5, []byte{1, 0, 1}), 11,
			[]byte{1, 0, 0x41, 0, 0x0b, 0xff, 0xff, 0xff, 0xff, 0x0f}), []byte{}...), module.ErrInvalidModule, "bytes claimed"},
		{"name section with two billion names", badSection(0, append([]byte{4, 'n', 'a', 'm', 'e', 1, 6}, 0xff, 0xff, 0xff, 0xff, 0x07, 0)), module.ErrInvalidModule, "count 2147483647"},
		// Exports.
		{"no exports", Module{Funcs: []Func{{}}}.Encode(), module.ErrNotTaskModule, "neither safepool_abi_version nor _start"},
		{"missing safepool_alloc", without("safepool_alloc"), module.ErrMissingExport, "safepool_alloc"},
		{"missing safepool_call", without("safepool_call"), module.ErrMissingExport, "safepool_call"},
		{"missing safepool_handlers", without("safepool_handlers"), module.ErrMissingExport, "safepool_handlers"},
		{"missing memory export", sdk(func(m *Module) { m.MemoryExport = "" }), module.ErrMissingExport, "memory"},
		{"memory exported under another name", sdk(func(m *Module) { m.MemoryExport = "mem" }), module.ErrMissingExport, "memory"},
		{"safepool_abi_version returns i64", retype("safepool_abi_version", nil, []byte{I64}), module.ErrBadSignature, "safepool_abi_version"},
		{"safepool_call takes i64", retype("safepool_call", []byte{I64, I64, I64, I64}, nil), module.ErrBadSignature, "safepool_call"},
		{"safepool_alloc returns nothing", retype("safepool_alloc", []byte{I32}, nil), module.ErrBadSignature, "safepool_alloc"},
		{"_start returns i32", Module{Funcs: []Func{{Export: "_start", Results: []byte{I32}}}}.Encode(), module.ErrBadSignature, "_start"},
		{"safepool_batch takes one argument", sdk(func(m *Module) {
			m.Funcs = append(m.Funcs, Func{Export: "safepool_batch", Params: []byte{I32}})
		}), module.ErrBadSignature, "safepool_batch"},
		// SDK exports in a command build: _start must run before the
		// exports can be called, and it runs the program's main instead.
		{"SDK module built as a command", withStart, module.ErrNotReactor, "build it as a reactor"},
		{"Go SDK module built as a command", append(append([]byte(nil), withStart...), goBuildID...), module.ErrNotReactor,
			"Go program built without -buildmode=c-shared (it exports _start and the safepool SDK's exports); rebuild it with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared"},
		// Imports.
		{"import env.foo", importing(Import{Module: "env", Name: "foo"}), module.ErrForbiddenImport, "env.foo"},
		{"import wasi_unstable", importing(Import{Module: "wasi_unstable", Name: "fd_write", Params: wasiFdWrite.Params, Results: wasiFdWrite.Results}), module.ErrForbiddenImport, "wasi_unstable.fd_write"},
		{"import a WASI function that does not exist", importing(Import{Module: "wasi_snapshot_preview1", Name: "sock_open", Params: []byte{I32, I32, I32}, Results: []byte{I32}}), module.ErrForbiddenImport, "wasi_snapshot_preview1.sock_open"},
		{"import a WASI function with the wrong type", importing(Import{Module: "wasi_snapshot_preview1", Name: "fd_write", Params: []byte{I32}, Results: []byte{I32}}), module.ErrBadSignature, "wasi_snapshot_preview1.fd_write"},
		{"import safepool.other", importing(Import{Module: "safepool", Name: "other"}), module.ErrForbiddenImport, "safepool.other"},
		{"import safepool.result with the wrong type", sdk(func(m *Module) { m.Imports[0].Params = []byte{I32} }), module.ErrBadSignature, "safepool.result"},
		{"import a memory", sdk(func(m *Module) {
			m.Memory, m.MemoryExport = 0, ""
			m.Imports = append(m.Imports, Import{Module: "env", Name: "memory", Kind: "memory"})
		}), module.ErrForbiddenImport, "env.memory"},
		{"import a table", importing(Import{Module: "env", Name: "table", Kind: "table"}), module.ErrForbiddenImport, "env.table"},
		{"import a global", importing(Import{Module: "env", Name: "g", Kind: "global"}), module.ErrForbiddenImport, "env.g"},
		// Well formed, refused by the worker.
		{"ABI version 2", sdk(func(m *Module) { m.Funcs[0].Return = 2 }), nil, "guest ABI 2"},
		{"_initialize traps", sdk(func(m *Module) {
			m.Funcs = append(m.Funcs, Func{Export: "_initialize", Trap: true})
		}), nil, "_initialize failed"},
		{"start function traps", sdk(func(m *Module) {
			m.Funcs = append(m.Funcs, Func{Trap: true})
			m.Start = uint32(len(m.Imports) + len(m.Funcs))
		}), nil, "unreachable"},
		// 1280 pages are 80 MiB, above the default cap of 64 MiB.
		{"memory's minimum above the default cap", sdk(func(m *Module) { m.Memory = 1280 }), nil,
			"the module needs 80 MiB of linear memory just to start (its memory's minimum is 1280 pages), above the memory cap of 64 MiB"},
	}
}

// locals returns a module with one function that declares n i32 locals.
func locals(n uint32) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = Section(b, 1, []byte{1, 0x60, 0, 0}) // one type: () -> ()
	b = Section(b, 3, []byte{1, 0})          // one function of type 0
	body := appendU32([]byte{1}, n, I32, 0x0b)
	return Section(b, 10, append(appendU32([]byte{1}, uint32(len(body))), body...))
}

// codeSectionLen returns the size of m's encoded code section (the last
// section), id and size bytes included.
func codeSectionLen(m Module) int {
	full := m.Encode()
	i, last := 8, 0
	for i < len(full) {
		start := i
		i++ // id
		var size, shift uint32
		for {
			c := full[i]
			i++
			size |= uint32(c&0x7f) << shift
			shift += 7
			if c&0x80 == 0 {
				break
			}
		}
		i += int(size)
		last = i - start
	}
	return last
}
