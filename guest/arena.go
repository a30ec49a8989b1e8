package guest

// arena hands out the buffers the host writes task names and inputs into
// (safepool_alloc). An allocation stays valid until reset, which the module
// calls when safepool_call or safepool_batch returns, as ABI.md requires.
//
// The current chunk is kept for the module's lifetime and only ever grows,
// so a steady stream of tasks allocates nothing after warm-up. Because every
// chunk is referenced from here, the garbage collector never frees memory
// the host still holds a pointer to; Go's collector does not move objects,
// so the pointers stay valid.
type arena struct {
	buf  []byte   // current chunk; allocations are carved from buf[off:]
	off  int      // first free byte in buf
	full [][]byte // earlier chunks, still in use until reset
}

const (
	arenaAlign    = 8    // alignment of every allocation
	arenaMinChunk = 4096 // size of the first chunk
)

// alloc returns n writable bytes, or nil if n is negative. The result is
// never empty: a zero-size request still gets a distinct, non-nil pointer.
func (a *arena) alloc(n int) []byte {
	if n < 0 {
		return nil
	}
	size := max(n, 1)
	size = (size + arenaAlign - 1) &^ (arenaAlign - 1)
	if size > len(a.buf)-a.off {
		a.grow(size)
	}
	b := a.buf[a.off : a.off+n : a.off+size]
	a.off += size
	return b
}

// grow starts a new chunk that can hold at least size bytes. The old chunk
// may still hold live allocations, so it is parked in full until reset.
func (a *arena) grow(size int) {
	if a.off > 0 {
		a.full = append(a.full, a.buf)
	}
	c := max(2*len(a.buf), size, arenaMinChunk)
	a.buf = make([]byte, c)
	a.off = 0
}

// reset ends the lifetime of every allocation. It keeps the current, largest
// chunk for reuse and lets the collector have the earlier ones.
func (a *arena) reset() {
	clear(a.full)
	a.full = a.full[:0]
	a.off = 0
}
