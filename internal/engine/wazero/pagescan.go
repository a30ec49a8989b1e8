package wazero

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The PAGEMAP_SCAN ioctl on /proc/self/pagemap (Linux 6.7, linux/fs.h)
// walks a range's page tables in the kernel and returns the runs of pages
// that match a filter, instead of 8 bytes per page that the caller then
// filters. golang.org/x/sys/unix does not define it (v0.50.0); these are
// the kernel's definitions, checked by TestPagemapScanABI.
const (
	pageIsFile    = 1 << 2
	pageIsPresent = 1 << 3
	pageIsSwapped = 1 << 4
	pageIsPFNZero = 1 << 5

	// pagemapScan is _IOWR('f', 16, struct pm_scan_arg).
	pagemapScan = 3<<30 | uint(unsafe.Sizeof(pmScanArg{}))<<16 | 'f'<<8 | 16
)

// pmScanArg is struct pm_scan_arg.
type pmScanArg struct {
	size              uint64
	flags             uint64
	start             uint64
	end               uint64
	walkEnd           uint64
	vec               uint64
	vecLen            uint64
	maxPages          uint64
	categoryInverted  uint64
	categoryMask      uint64
	categoryAnyofMask uint64
	returnMask        uint64
}

// pageRegion is struct page_region: the pages [start, end) of one run.
type pageRegion struct {
	start, end, categories uint64
}

// scanWritten finds the pages of b that a task wrote, as copyDirty counts
// them: those present and neither the file's (the snapshot's) nor the
// shared zero page, or swapped out; or, when b's writes are tracked
// (wptrack.go), those the kernel marks written. It stops once it has
// found more than most pages, and returns the runs found, in regions
// (reused), and how many pages they hold. ok is false when the kernel has
// no PAGEMAP_SCAN (before 6.7: ENOTTY or EINVAL), when tracked is set but
// b is not tracked, or the scan failed.
func scanWritten(pagemap int, b []byte, most int, regions []pageRegion, tracked bool) (_ []pageRegion, pages int, ok bool) {
	ps := uint64(unix.Getpagesize())
	if cap(regions) < 32 {
		regions = make([]pageRegion, 32)
	}
	regions = regions[:cap(regions)]
	start := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	end := start + uint64(len(b))
	found := regions[:0]
	out := 0
	for start < end {
		arg := pmScanArg{
			size:              uint64(unsafe.Sizeof(pmScanArg{})),
			start:             start,
			end:               end,
			vec:               uint64(uintptr(unsafe.Pointer(&regions[out]))),
			vecLen:            uint64(len(regions) - out),
			maxPages:          uint64(most + 1 - pages),
			categoryInverted:  pageIsFile | pageIsPFNZero,
			categoryMask:      pageIsFile | pageIsPFNZero,
			categoryAnyofMask: pageIsPresent | pageIsSwapped,
			returnMask:        pageIsPresent | pageIsSwapped,
		}
		if tracked {
			arg.flags = pmScanCheckWPAsync
			arg.categoryInverted, arg.categoryMask, arg.categoryAnyofMask = 0, pageIsWritten, 0
			arg.returnMask = pageIsWritten
		}
		n, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(pagemap), uintptr(pagemapScan), uintptr(unsafe.Pointer(&arg)))
		if errno != 0 {
			return regions, 0, false
		}
		for _, r := range regions[out : out+int(n)] {
			pages += int((r.end - r.start) / ps)
		}
		out += int(n)
		found = regions[:out]
		if pages > most || arg.walkEnd >= end {
			break
		}
		start = arg.walkEnd
		if out == len(regions) { // the vector is full: grow it and go on
			regions = append(regions, make([]pageRegion, len(regions))...)
		}
	}
	return found, pages, true
}
