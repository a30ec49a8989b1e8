package wazero

import (
	"bytes"
	"fmt"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestMemorySnapshot: after a reset the memory holds the snapshot's bytes
// again, whether the reset copied the written pages back (a few written)
// or threw every page away (more than maxCopied written), and a reset of a
// memory that grew refuses; with the written pages found by PAGEMAP_SCAN
// and by reading the page map; with the writes tracked (wptrack.go) and
// without.
func TestMemorySnapshot(t *testing.T) {
	for _, mode := range []string{"tracked", "scan", "pagemap"} {
		t.Run(mode, func(t *testing.T) { testMemorySnapshot(t, mode) })
	}
}

// withoutWriteTracking makes the snapshots taken until t ends untracked,
// as in a process that could not open a userfaultfd.
func withoutWriteTracking(t testing.TB) {
	fd := writeTracking.fd
	writeTracking.fd = -1
	t.Cleanup(func() { writeTracking.fd = fd })
}

// requireWriteTracking opens the process's write tracking, or skips t.
func requireWriteTracking(t testing.TB) {
	if !OpenWriteTracking() {
		t.Skip("the kernel refuses an asynchronous write-protect userfaultfd (Linux 6.7+)")
	}
}

func testMemorySnapshot(t *testing.T, mode string) {
	const size = 2 << 20
	ps := unix.Getpagesize()
	if mode == "tracked" {
		requireWriteTracking(t)
	} else {
		withoutWriteTracking(t)
	}
	c := &memCap{limit: 8 << 20}
	m := c.Allocate(0, 0).(*capMemory)
	defer m.Free()
	mem := m.Reallocate(size)
	for i := 0; i < size; i += 3 * ps {
		mem[i] = byte(i / ps) // some pages hold data, the rest zeros
	}
	want := bytes.Clone(mem)
	require.NoError(t, m.snapshot())
	require.Equal(t, want, mem, "taking the snapshot changes nothing")
	require.NotNil(t, m.view, "the page map is readable here")
	if mode != "pagemap" && !m.scan {
		t.Skip("the kernel has no PAGEMAP_SCAN (Linux 6.7+)")
	}
	require.Equal(t, mode == "tracked", m.tracked)
	m.scan = mode != "pagemap"
	var sink byte
	for i := 0; i < size; i += 5 * ps {
		sink += mem[i] // pages read, never written, are not copied and need not be
	}
	_ = sink

	for _, tc := range []struct {
		name   string
		pages  int
		copied bool
	}{
		{"a few pages written", 10, true},
		{"the same pages again", 10, true},
		{"the same pages and one more", 11, true}, // a page not found before
		{"the same pages again, and again", 11, true},
		{"more than maxCopied written", maxCopied + 50, false},
		{"after that, a few again", 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for p := range tc.pages {
				mem[p*ps+7] = 0xEE
			}
			copied := m.copyDirty()
			require.Equal(t, tc.copied, copied)
			if !copied {
				require.True(t, m.reset(), "throwing every page away")
			}
			require.Equal(t, want, mem)
		})
	}

	t.Run("grown", func(t *testing.T) {
		mem = m.Reallocate(size + 64<<10)
		require.False(t, m.reset())
	})
}

// TestPagemapScanABI checks the definitions of pagescan.go against the
// kernel's uapi (linux/fs.h): PAGEMAP_SCAN is 0xc0606610 on every
// architecture with the common ioctl encoding.
func TestPagemapScanABI(t *testing.T) {
	require.EqualValues(t, 96, unsafe.Sizeof(pmScanArg{}))
	require.EqualValues(t, 24, unsafe.Sizeof(pageRegion{}))
	require.EqualValues(t, uint(0xc0606610), pagemapScan)
}

// TestScanWritten: PAGEMAP_SCAN finds exactly the pages written since the
// snapshot, as runs, whether they were read before or not, and not the
// pages only read; it stops past the most asked for. With the writes
// tracked and without.
func TestScanWritten(t *testing.T) {
	for _, tracked := range []bool{true, false} {
		t.Run(fmt.Sprintf("tracked=%v", tracked), func(t *testing.T) { testScanWritten(t, tracked) })
	}
}

func testScanWritten(t *testing.T, tracked bool) {
	const size = 1 << 20
	ps := unix.Getpagesize()
	if tracked {
		requireWriteTracking(t)
	} else {
		withoutWriteTracking(t)
	}
	c := &memCap{limit: 4 << 20}
	m := c.Allocate(0, 0).(*capMemory)
	defer m.Free()
	mem := m.Reallocate(size)
	mem[5*ps] = 1
	require.NoError(t, m.snapshot())
	if !m.scan {
		t.Skip("the kernel has no PAGEMAP_SCAN (Linux 6.7+)")
	}
	require.Equal(t, tracked, m.tracked)
	var sink byte
	for p := 0; p < 40; p++ {
		sink += mem[p*ps] // read: maps the snapshot's page (or the zero page)
	}
	_ = sink
	for _, p := range []int{3, 4, 5, 9, 20, 21} {
		mem[p*ps+1] = 2
	}
	mem[100*ps] = 3 // never read before
	base := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(mem))))
	found, pages, ok := scanWritten(m.pagemap, mem, maxCopied, nil, tracked)
	require.True(t, ok)
	require.Equal(t, 7, pages)
	var got [][2]int
	for _, r := range found {
		got = append(got, [2]int{int(r.start-base) / ps, int(r.end-base) / ps})
	}
	require.Equal(t, [][2]int{{3, 6}, {9, 10}, {20, 22}, {100, 101}}, got)

	_, pages, ok = scanWritten(m.pagemap, mem, 2, found, tracked)
	require.True(t, ok)
	require.Greater(t, pages, 2, "a scan stops once it has found more than the most asked for")
	require.Less(t, pages, 7)

	if tracked {
		// After a reset copies the written pages back they stay written:
		// the next task writes them without a fault, and the next reset
		// copies them again.
		require.True(t, m.copyDirty())
		_, pages, ok = scanWritten(m.pagemap, mem, maxCopied, nil, true)
		require.True(t, ok)
		require.Equal(t, 7, pages)
		// A reset that throws every page away forgets them.
		require.NoError(t, unix.Madvise(m.buf[:m.snapLen], unix.MADV_DONTNEED))
		require.True(t, writeProtect(m.buf[:m.snapLen]))
		_, pages, ok = scanWritten(m.pagemap, mem, maxCopied, nil, true)
		require.True(t, ok)
		require.Zero(t, pages)
		sink += mem[8*ps] + mem[30*ps] // read, not written
		mem[7*ps] = 1
		_, pages, _ = scanWritten(m.pagemap, mem, maxCopied, nil, true)
		require.Equal(t, 1, pages, "a page written after the pages were thrown away")
	} else {
		_, _, ok = scanWritten(m.pagemap, mem, maxCopied, nil, true)
		require.False(t, ok, "a tracked scan of an untracked memory fails")
	}
}

// TestUserfaultfdABI checks wptrack.go's definitions against the kernel's
// uapi (linux/userfaultfd.h).
func TestUserfaultfdABI(t *testing.T) {
	require.EqualValues(t, 24, unsafe.Sizeof(uffdioAPIArg{}))
	require.EqualValues(t, 32, unsafe.Sizeof(uffdioRegisterArg{}))
	require.EqualValues(t, 24, unsafe.Sizeof(uffdioWriteprotectArg{}))
	require.EqualValues(t, uint(0xc018aa3f), uint(uffdioAPI))
	require.EqualValues(t, uint(0xc020aa00), uint(uffdioRegister))
	require.EqualValues(t, uint(0xc018aa06), uint(uffdioWriteprotect))
}
