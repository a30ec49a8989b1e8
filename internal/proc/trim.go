package proc

import (
	"bufio"
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// TrimFilePages drops from this process's resident set the pages of the
// files it maps read-only and has never written: the executable's code and
// read-only data, and those of shared libraries. It returns how many bytes
// of such mappings were resident before.
//
// A worker is its host's whole binary, and starting up touches much of it
// (megabytes of code and tables a worker at work never looks at again).
// Those pages are the page cache's, shared with every worker and the
// host, but each process that maps them counts them in its RSS, and so in
// what the kernel's OOM killer weighs. madvise(MADV_DONTNEED) unmaps them
// from this process only: the page cache keeps them, and the pages a
// worker uses again come back on first touch, as minor faults.
//
// Only a mapping that is private, not writable, backed by a file and has
// no anonymous page is dropped: a page the process changed (relocations a
// dynamic loader wrote before it made the mapping read-only) is its own
// copy, which MADV_DONTNEED would throw away, and such a mapping shows
// Anonymous pages in /proc/self/smaps. Errors are not reported: the trim
// is an economy, and a mapping that cannot be dropped stays as it was.
func TrimFilePages() int64 {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0
	}
	defer f.Close()
	var (
		trimmed   int64
		lo, hi    uintptr
		candidate bool // the mapping being read may be dropped
		rss, anon int64
	)
	flush := func() {
		if candidate && anon == 0 && rss > 0 {
			if _, _, errno := unix.Syscall(unix.SYS_MADVISE, lo, hi-lo, unix.MADV_DONTNEED); errno == 0 {
				trimmed += rss
			}
		}
		candidate, rss, anon = false, 0, 0
	}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Bytes()
		if start, end, ok := mappingRange(line); ok {
			flush()
			lo, hi = start, end
			candidate = trimmable(line)
			continue
		}
		if v, ok := bytes.CutPrefix(line, []byte("Rss:")); ok {
			rss = kib(v)
		} else if v, ok := bytes.CutPrefix(line, []byte("Anonymous:")); ok {
			anon = kib(v)
		}
	}
	flush()
	return trimmed
}

// mappingRange parses the address range that starts a mapping's header
// line in /proc/PID/smaps ("7f12a0000000-7f12a0021000 r-xp ...").
func mappingRange(line []byte) (lo, hi uintptr, ok bool) {
	dash := bytes.IndexByte(line, '-')
	sp := bytes.IndexByte(line, ' ')
	if dash <= 0 || sp <= dash {
		return 0, 0, false
	}
	a, err1 := strconv.ParseUint(string(line[:dash]), 16, 64)
	b, err2 := strconv.ParseUint(string(line[dash+1:sp]), 16, 64)
	if err1 != nil || err2 != nil || b <= a {
		return 0, 0, false
	}
	return uintptr(a), uintptr(b), true
}

// trimmable reports whether a mapping's header line names a private,
// read-only mapping of a file: perms r-xp or r--p, and a path.
func trimmable(line []byte) bool {
	fields := bytes.Fields(line)
	if len(fields) < 6 {
		return false // anonymous
	}
	perms, path := string(fields[1]), fields[5]
	return (perms == "r-xp" || perms == "r--p") && len(path) > 0 && path[0] == '/'
}

// kib parses " 1234 kB" into bytes.
func kib(v []byte) int64 {
	fields := bytes.Fields(v)
	if len(fields) == 0 {
		return 0
	}
	n, err := strconv.ParseInt(string(fields[0]), 10, 64)
	if err != nil {
		return 0
	}
	return n << 10
}
