package sandbox

// Facts read straight from a module's binary, for modules that have passed
// checkBounds (or that the engine has compiled, which checks more).

// memoryPages returns the largest declared minimum, in pages, of the
// memories the module defines: what its instantiation allocates before any
// of its code runs.
func memoryPages(wasm []byte) uint64 {
	var pages uint64
	eachSection(wasm, func(id byte, r *reader) {
		if id != 5 {
			return
		}
		r.vec("memories", func() {
			flags := r.byte()
			width := 5
			if flags&0x04 != 0 { // 64-bit memory
				width = 10
			}
			pages = max(pages, r.leb(width))
			if flags&0x01 != 0 {
				r.leb(width)
			}
		})
	})
	return pages
}

// hasCustomSection reports whether the module has a custom section called
// name.
func hasCustomSection(wasm []byte, name string) bool {
	found := false
	eachSection(wasm, func(id byte, r *reader) {
		if id != 0 || found {
			return
		}
		n := r.u32()
		if r.err == nil && uint64(n) <= uint64(r.left()) {
			found = string(r.b[r.off:r.off+int(n)]) == name
		}
	})
	return found
}

// goBuildID names the custom section the Go linker writes into every module.
const goBuildID = "go:buildid"

// eachSection calls f with the id and a reader of each section, in order,
// until the bytes end or do not parse.
func eachSection(wasm []byte, f func(id byte, r *reader)) {
	if len(wasm) < 8 {
		return
	}
	r := &reader{b: wasm, off: 8, end: len(wasm)}
	for r.off < r.end && r.err == nil {
		id := r.byte()
		sec := r.sub(r.u32())
		if r.err != nil {
			return
		}
		f(id, sec)
	}
}
