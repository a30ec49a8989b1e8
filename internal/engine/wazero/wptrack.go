package wazero

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Write tracking tells a reset which pages a task wrote without asking
// the kernel about every present page. A snapshot's memory is registered
// with a userfaultfd in asynchronous write-protect mode (Linux 6.7,
// UFFD_FEATURE_WP_ASYNC) and write-protected once, right after the
// snapshot: every page table entry of the memory then carries the
// write-protect bit, or a marker where no page is mapped yet
// (UFFD_FEATURE_WP_UNPOPULATED). The first write to a page clears it in
// the kernel's fault handler, with no message to any reader, and the
// page's private copy never gets it back: a page copied back by a reset
// stays writable, so the next task writing it does not fault, as without
// tracking. PAGEMAP_SCAN then asks for PAGE_IS_WRITTEN only, a test of
// one bit per entry, where without tracking each present page's struct
// page is read to tell the snapshot's pages from private copies; and the
// pages a read maps no longer count, nor does the kernel map the
// neighbours of a page read (fault-around is off under write-protect),
// so a task reading the guest's data maps only the pages it reads.
// A reset that throws every page away with madvise(MADV_DONTNEED)
// write-protects the memory again (writeProtect), which forgets them as
// written.
//
// The descriptor is opened once per process, before the worker's seccomp
// filter, which denies userfaultfd (OpenWriteTracking), with
// UFFD_USER_MODE_ONLY: faults in kernel mode are never delivered to a
// reader, which is what makes userfaultfd a tool for widening a kernel
// race, and asynchronous mode delivers none at all. Nothing reads it.
// Without it, because the kernel or a container's seccomp profile refuses
// userfaultfd, a reset finds the written pages as before (copyScanned).

// Userfaultfd's definitions (linux/userfaultfd.h, Linux 6.7); x/sys/unix
// has none of them (v0.50.0). Checked by TestUserfaultfdABI.
const (
	uffdUserModeOnly = 1
	uffdAPI          = 0xAA

	uffdFeatureWPHugetlbfsShmem = 1 << 12
	uffdFeatureWPUnpopulated    = 1 << 13
	uffdFeatureWPAsync          = 1 << 15

	uffdRegisterModeWP     = 1 << 1
	uffdWriteprotectModeWP = 1 << 0

	// _IOWR(0xAA, nr, struct): struct uffdio_api (24 bytes),
	// uffdio_register (32) and uffdio_writeprotect (24).
	uffdioAPI          = 3<<30 | 24<<16 | 0xAA<<8 | 0x3F
	uffdioRegister     = 3<<30 | 32<<16 | 0xAA<<8 | 0x00
	uffdioWriteprotect = 3<<30 | 24<<16 | 0xAA<<8 | 0x06

	// PAGEMAP_SCAN's flag and category for write tracking (linux/fs.h).
	pmScanCheckWPAsync = 1 << 1 // fail unless the range is tracked
	pageIsWritten      = 1 << 1
)

type uffdioAPIArg struct{ api, features, ioctls uint64 }

type uffdioRegisterArg struct{ start, len, mode, ioctls uint64 }

type uffdioWriteprotectArg struct{ start, len, mode uint64 }

// writeTracking is the process's userfaultfd for write tracking: fd is -1
// until OpenWriteTracking opened one.
var writeTracking = struct {
	once sync.Once
	fd   int
}{fd: -1}

// OpenWriteTracking opens the process's userfaultfd for write tracking, if
// the kernel lets it, so that the snapshots taken afterwards track the
// pages written. A worker calls it before its seccomp filter, which
// denies userfaultfd. It is safe to call more than once, and reports
// whether tracking is on.
func (Engine) OpenWriteTracking() bool { return OpenWriteTracking() }

// OpenWriteTracking is Engine.OpenWriteTracking.
func OpenWriteTracking() bool {
	writeTracking.once.Do(func() {
		fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK|uffdUserModeOnly, 0, 0)
		if errno != 0 {
			return
		}
		api := uffdioAPIArg{api: uffdAPI, features: uffdFeatureWPAsync | uffdFeatureWPUnpopulated | uffdFeatureWPHugetlbfsShmem}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, uffdioAPI, uintptr(unsafe.Pointer(&api))); errno != 0 {
			_ = unix.Close(int(fd)) // a kernel before 6.7: no asynchronous write-protect
			return
		}
		writeTracking.fd = int(fd)
	})
	return writeTracking.fd >= 0
}

// trackWrites registers b, a snapshot's memory, for write tracking and
// write-protects it, and reports whether it did. On failure b is left as
// it was, or registered but unprotected, which the caller treats alike:
// it does not scan for PAGE_IS_WRITTEN.
func trackWrites(b []byte) bool {
	fd := writeTracking.fd
	if fd < 0 || len(b) == 0 {
		return false
	}
	start := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	reg := uffdioRegisterArg{start: start, len: uint64(len(b)), mode: uffdRegisterModeWP}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uffdioRegister, uintptr(unsafe.Pointer(&reg))); errno != 0 {
		return false
	}
	return writeProtect(b)
}

// writeProtect write-protects b, a tracked memory, so that none of its
// pages counts as written until written again. It leaves a marker where
// no page is mapped. A reset calls it after madvise(MADV_DONTNEED), which
// (Linux 6.18) leaves the entries it clears without a marker: PAGEMAP_SCAN
// reports such an entry as written, and a read fault maps a page without
// the bit, which would count as written too. Both only cost copies, but
// every reset would copy them.
func writeProtect(b []byte) bool {
	wp := uffdioWriteprotectArg{start: uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))), len: uint64(len(b)), mode: uffdWriteprotectModeWP}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(writeTracking.fd), uffdioWriteprotect, uintptr(unsafe.Pointer(&wp)))
	return errno == 0
}
