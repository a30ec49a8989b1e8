package wazero

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A memory snapshot makes a used instance's linear memory what it was when
// the snapshot was taken, for the price of the pages the guest touched
// since, as wasmtime's pooling allocator does. The snapshot is a memfd
// holding the memory's bytes; the memory's first snapLen bytes are then a
// private, copy-on-write mapping of it. A write gives the guest a private
// copy of its page; madvise(MADV_DONTNEED) throws the private copies away,
// and the next access reads the snapshot's page again.
//
// Only a memory of the snapshot's size can be reset: a grow past it cannot
// be undone (wazero cannot shrink a memory), and the guest's runtime would
// see a memory larger than the one it remembers having, which a Go guest
// then grows further at every task. The caller makes a new instance
// instead.

// snapshot copies the memory into a memfd and maps the memory onto it.
// The memory's bytes do not change.
func (m *capMemory) snapshot() error {
	if m.snapLen != 0 {
		return errors.New("the memory already has a snapshot")
	}
	n := len(m.cur)
	if n == 0 {
		return nil // nothing to keep: a reset has nothing to do
	}
	fd, err := unix.MemfdCreate("safepool-snapshot", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd_create: %w", err)
	}
	defer unix.Close(fd) // the mapping keeps the file
	if err := unix.Ftruncate(fd, int64(n)); err != nil {
		return fmt.Errorf("size the memory snapshot: %w", err)
	}
	// The file is sparse: chunks of zeros, most of a fresh Go guest's
	// heap, are holes that read as zeros and take no memory.
	const chunk = 64 << 10
	for off := 0; off < n; off += chunk {
		b := m.cur[off:min(off+chunk, n)]
		if allZero(b) {
			continue
		}
		for at := off; len(b) > 0; {
			w, err := unix.Pwrite(fd, b, int64(at))
			if err != nil {
				return fmt.Errorf("write the memory snapshot: %w", err)
			}
			b, at = b[w:], at+w
		}
	}
	// MAP_FIXED replaces the reservation's pages in place: the memory keeps
	// its address, which wazero and the compiled code hold.
	_, err = unix.MmapPtr(fd, 0, unsafe.Pointer(unsafe.SliceData(m.buf)), uintptr(n),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED|unix.MAP_NORESERVE)
	if err != nil {
		// MAP_FIXED failed before it unmapped anything, so the memory
		// is as it was.
		return fmt.Errorf("map the memory snapshot: %w", err)
	}
	m.snapLen = n
	return nil
}

// reset makes the memory what it was at the snapshot, and reports false,
// doing nothing, when that cannot be done: the memory has no snapshot or
// has grown since.
func (m *capMemory) reset() bool {
	if m.snapLen == 0 || len(m.cur) != m.snapLen {
		return false
	}
	return unix.Madvise(m.buf[:m.snapLen], unix.MADV_DONTNEED) == nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if *(*uint64)(unsafe.Pointer(unsafe.SliceData(b))) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
