package wazero

import (
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// memCap enforces a linear-memory cap for one instance, in any guest
// language. wazero's own page limit is set far above every cap; this
// allocator refuses growth past the cap, so memory.grow returns -1, and it
// records that the cap was hit. Go guests then trap with "out of memory",
// C guests see malloc fail; either way the task is reported as memory_limit,
// without matching any guest's error text.
//
// The backing store is one anonymous mapping of the cap's size, reserved but
// not committed: the kernel hands out pages only when the guest touches them,
// and growth never copies.
type memCap struct {
	limit uint64
	hit   atomic.Bool   // a grow past limit was refused
	peak  atomic.Uint64 // largest size granted, bytes
	mem   *capMemory
}

func (c *memCap) Allocate(_, _ uint64) experimental.LinearMemory {
	c.mem = &capMemory{c: c}
	return c.mem
}

type capMemory struct {
	c   *memCap
	buf []byte // the whole reservation
	cur []byte

	// snapLen is the size of the memory's snapshot, which backs
	// buf[:snapLen]; 0 for none (see snapshot.go). view is a read-only
	// mapping of the snapshot and pagemap the descriptor of
	// /proc/self/pagemap, for copyDirty; view is nil without them. pm is
	// copyDirty's buffer. scan is set when the kernel has PAGEMAP_SCAN,
	// which copyDirty then uses instead of reading pm. regions are the
	// runs of pages the last scan found, in a buffer the next scan reuses
	// up to its capacity. tracked is set when the kernel tracks the pages
	// written (wptrack.go), which PAGEMAP_SCAN then reports. known is set
	// while regions still hold every page written: no fault since the
	// scan began, when the process's fault count was faults
	// (copyScanned). scans counts the scans, for the tests and benchmarks.
	snapLen int
	view    []byte
	pagemap int
	pm      []uint64
	scan    bool
	tracked bool
	regions []pageRegion
	known   bool
	faults  int64
	scans   int
}

func (m *capMemory) Reallocate(size uint64) []byte {
	if size > m.c.limit {
		m.c.hit.Store(true)
		return nil
	}
	if m.buf == nil {
		b, err := unix.Mmap(-1, 0, int(max(m.c.limit, 1)), unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			// The process's address-space backstop refused the reservation.
			m.c.hit.Store(true)
			return nil
		}
		m.buf = b
	}
	m.cur = m.buf[:size]
	if size > m.c.peak.Load() {
		m.c.peak.Store(size)
	}
	return m.cur
}

func (m *capMemory) Free() {
	if m.view != nil {
		_ = unix.Munmap(m.view)
		_ = unix.Close(m.pagemap)
		m.view = nil
	}
	if m.buf != nil {
		_ = unix.Munmap(m.buf)
		m.buf, m.cur = nil, nil
	}
}
