package proc

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// rssFile is this process's resident pages of mapped files (RssFile in
// /proc/self/status), in bytes.
func rssFile(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("RssFile:")); ok {
			return kib(v)
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TrimFilePages unmaps the resident pages of this test binary's code and
// read-only data, and the process goes on running that code (pages come
// back on first touch).
func TestTrimFilePagesDropsTheBinarysPages(t *testing.T) {
	before := rssFile(t)
	trimmed := TrimFilePages()
	after := rssFile(t)
	t.Logf("RssFile %d KiB -> %d KiB; %d KiB of read-only file mappings were resident", before>>10, after>>10, trimmed>>10)
	require.Positive(t, trimmed, "the test binary's code was resident")
	require.Less(t, after, before-trimmed/2, "RssFile drops by about what was trimmed")
	// Code and tables come back as they are used: trimming again finds
	// resident again what this goroutine ran since.
	require.Positive(t, TrimFilePages())
}

// A private mapping the process wrote to and then made read-only (as a
// dynamic loader does with relocations) holds pages of its own, which
// MADV_DONTNEED would throw away: TrimFilePages leaves it alone. A
// read-only mapping never written is dropped, and reads back the file.
func TestTrimFilePagesKeepsWrittenPages(t *testing.T) {
	page := os.Getpagesize()
	path := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.WriteFile(path, bytes.Repeat([]byte{'f'}, 4*page), 0o600))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()

	written, err := unix.Mmap(int(f.Fd()), 0, 4*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	require.NoError(t, err)
	defer unix.Munmap(written)
	for i := range written {
		written[i] = 'w' // copy-on-write: the process's own pages now
	}
	require.NoError(t, unix.Mprotect(written, unix.PROT_READ)) // r--p, as RELRO ends

	clean, err := unix.Mmap(int(f.Fd()), 0, 4*page, unix.PROT_READ, unix.MAP_PRIVATE)
	require.NoError(t, err)
	defer unix.Munmap(clean)
	require.Equal(t, byte('f'), clean[3*page]) // resident now

	TrimFilePages()
	require.Equal(t, bytes.Repeat([]byte{'w'}, 4*page), written, "written pages survive the trim")
	require.Equal(t, bytes.Repeat([]byte{'f'}, 4*page), clean, "a dropped mapping reads the file again")
}

func TestMappingHeaders(t *testing.T) {
	lo, hi, ok := mappingRange([]byte("7f12a0000000-7f12a0021000 r-xp 00000000 08:01 1234  /usr/bin/x"))
	require.True(t, ok)
	require.Equal(t, uintptr(0x7f12a0000000), lo)
	require.Equal(t, uintptr(0x7f12a0021000), hi)
	_, _, ok = mappingRange([]byte("Rss:                 132 kB"))
	require.False(t, ok, "a field line is no header")
	_, _, ok = mappingRange([]byte("VmFlags: rd ex mr mw me dw sd"))
	require.False(t, ok)

	for line, want := range map[string]bool{
		"55d0-55d1 r-xp 00000000 08:01 1234  /usr/bin/x":            true,
		"55d0-55d1 r--p 00001000 08:01 1234  /usr/bin/x":            true,
		"55d0-55d1 rw-p 00002000 08:01 1234  /usr/bin/x":            false, // writable: data and bss
		"55d0-55d1 r--s 00000000 00:01 99    /memfd:slot (deleted)": false, // shared
		"55d0-55d1 r-xp 00000000 00:00 0 ":                          false, // anonymous: a JIT's code
		"55d0-55d1 r--p 00000000 00:00 0     [vvar]":                false,
		"55d0-55d1 r-xp 00000000 00:00 0     [vdso]":                false,
	} {
		require.Equal(t, want, trimmable([]byte(line)), line)
	}
	require.Equal(t, int64(132<<10), kib([]byte("  132 kB")))
	require.Zero(t, kib([]byte("")))
}
