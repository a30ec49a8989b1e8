package wazero

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A memory snapshot makes a used instance's linear memory what it was when
// the snapshot was taken, for the price of the pages the guest wrote
// since, much as wasmtime's pooling allocator does. The snapshot is a memfd
// holding the memory's bytes; the memory's first snapLen bytes are then a
// private, copy-on-write mapping of it. A write gives the guest a private
// copy of its page. A reset copies the snapshot back over those pages
// (copyDirty), or, when there are many, throws them away with
// madvise(MADV_DONTNEED), after which the next access reads the snapshot's
// page again.
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
	// A read-only view of the snapshot, and the page map that tells which
	// pages a task wrote, for resets that copy only those (copyDirty).
	// Without either a reset throws away every page instead.
	if view, err := unix.Mmap(fd, 0, n, unix.PROT_READ, unix.MAP_SHARED); err == nil {
		if pm, err := unix.Open("/proc/self/pagemap", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
			m.view, m.pagemap = view, pm
			_, _, m.scan = scanWritten(pm, m.buf[:n], maxCopied, nil, false)
			if m.scan && trackWrites(m.buf[:n]) {
				_, _, m.tracked = scanWritten(pm, m.buf[:n], maxCopied, nil, true)
			}
		} else {
			_ = unix.Munmap(view)
		}
	}
	return nil
}

// reset makes the memory what it was at the snapshot, and reports false,
// doing nothing, when that cannot be done: the memory has no snapshot or
// has grown since.
func (m *capMemory) reset() bool {
	if m.snapLen == 0 || len(m.cur) != m.snapLen {
		return false
	}
	if m.copyDirty() {
		return true
	}
	if unix.Madvise(m.buf[:m.snapLen], unix.MADV_DONTNEED) != nil {
		return false
	}
	if m.tracked && !writeProtect(m.buf[:m.snapLen]) {
		m.tracked = false // scan as without tracking: correct, if slower
	}
	return true
}

// maxCopied is the most pages copyDirty copies back. Once a task has
// written more, a reset throws every page away instead, which also makes
// the pages written once, and copied at every reset since, the snapshot's
// again.
const maxCopied = 256

// Bits of a /proc/self/pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
const (
	pmPresent = 1 << 63
	pmSwapped = 1 << 62
	pmFile    = 1 << 61 // a page of the file (or shared): not a private copy
)

// copyDirty resets the memory by copying the snapshot's bytes over the
// pages that hold a private copy, the pages a task wrote (this one or an
// earlier one), and reports whether it did. Pages the guest only read still
// map the snapshot, and pages it never touched read it when touched. Unlike
// madvise, this keeps the written pages mapped: the next task, which
// writes mostly the same pages (its stack, the same heap spans), does not
// fault on them again, and no other thread's TLB needs flushing. A page
// counts as written when the page map says it is present and not the
// file's, or swapped out; counting too many only costs a copy.
func (m *capMemory) copyDirty() bool {
	if m.view == nil {
		return false
	}
	if m.scan {
		return m.copyScanned()
	}
	ps := unix.Getpagesize()
	pages := m.snapLen / ps
	if cap(m.pm) < pages {
		m.pm = make([]uint64, pages)
	}
	pm := m.pm[:pages]
	raw := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(pm))), len(pm)*8)
	off := int64(uintptr(unsafe.Pointer(unsafe.SliceData(m.buf)))/uintptr(ps)) * 8
	if n, err := unix.Pread(m.pagemap, raw, off); err != nil || n != len(raw) {
		return false
	}
	dirty := 0
	for _, e := range pm {
		if written(e) {
			dirty++
		}
	}
	if dirty > maxCopied {
		return false
	}
	for i, e := range pm {
		if written(e) {
			copy(m.buf[i*ps:(i+1)*ps], m.view[i*ps:(i+1)*ps])
		}
	}
	return true
}

// written reports whether the page of a page map entry e holds a task's
// writes: present and not the file's, or swapped out.
func written(e uint64) bool { return e&pmSwapped != 0 || e&pmPresent != 0 && e&pmFile == 0 }

// copyScanned is copyDirty with the pages found by PAGEMAP_SCAN
// (scanWritten), which costs a fraction of reading 8 bytes per page of
// the memory: the kernel skips the page-table holes of pages never
// touched and returns runs.
//
// When no page fault at all has happened in the process since the last
// scan began, the pages that scan found are copied without a new one. A
// page the last scan did not find was, when it ran, either the snapshot's
// (mapped read-only, or write-protected when tracked) or not mapped, and
// the first write to such a page faults: the kernel must copy it, map it
// or lift its protection. Every fault, in user or kernel mode, on any
// thread, adds to the process's minor or major fault count
// (mm_account_fault), which getrusage reads for less than a scan costs.
// So an unchanged count means that the pages written are among those
// found. A count that moved, for whatever reason (a read of a page not
// mapped yet, the worker's own heap), only means a scan.
func (m *capMemory) copyScanned() bool {
	faults, counted := faultCount()
	if !counted || !m.known || faults != m.faults {
		m.known = false
		found, pages, ok := scanWritten(m.pagemap, m.buf[:m.snapLen], maxCopied, m.regions, m.tracked)
		m.regions = found
		m.scans++
		if !ok || pages > maxCopied {
			return false
		}
	}
	m.faults, m.known = faults, counted
	base := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(m.buf))))
	for _, r := range m.regions {
		lo, hi := int(r.start-base), int(r.end-base)
		copy(m.buf[lo:hi], m.view[lo:hi])
	}
	return true
}

// faultCount is the number of page faults the process has taken, minor
// and major, on all its threads, living and gone.
func faultCount() (int64, bool) {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return ru.Minflt + ru.Majflt, true
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
