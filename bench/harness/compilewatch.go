package harness

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// compileWatch counts compilations into a compilation cache directory by
// watching it with inotify. wazero writes each compiled module to a
// temporary file "<key>.<random>.tmp" and renames it to "<key>", so every
// compilation leaves a uniquely named temporary file, even when several
// processes compile the same module into the same name. Counting the file
// names tells one compilation per machine from one per worker, which the
// final contents of the directory cannot.
type compileWatch struct {
	fd int      // the inotify descriptor, owned by f
	f  *os.File // never call f.Fd: it would make reads block a thread

	mu    sync.Mutex
	dirs  map[int32]string
	tmps  map[string]map[string]bool // key -> temporary names seen
	final map[string]bool            // keys renamed into place
	done  chan struct{}
}

func watchCompiles(root string) (*compileWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	w := &compileWatch{
		fd:    fd,
		f:     os.NewFile(uintptr(fd), "inotify"), // non-blocking: reads wait in the poller
		dirs:  map[int32]string{},
		tmps:  map[string]map[string]bool{},
		final: map[string]bool{},
		done:  make(chan struct{}),
	}
	w.mu.Lock()
	err = w.add(root, true)
	w.mu.Unlock()
	if err != nil {
		w.f.Close()
		return nil, err
	}
	go w.loop()
	return w, nil
}

// add watches dir and records what it already holds, recursively: a
// directory created under a watched one may fill before its own watch is
// in place. Files found when the watch starts (initial) were written
// before it and are not counted. Called with mu held.
func (w *compileWatch) add(dir string, initial bool) error {
	wd, err := unix.InotifyAddWatch(w.fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ONLYDIR)
	if err != nil {
		return err
	}
	w.dirs[int32(wd)] = dir
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := w.add(filepath.Join(dir, e.Name()), initial); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			continue
		}
		if !initial {
			w.record(e.Name(), false)
		}
	}
	return nil
}

// record notes a file name seen in the cache.
func (w *compileWatch) record(name string, renamed bool) {
	if isPreparedMark(name) {
		return
	}
	key, rest, isTmp := strings.Cut(name, ".")
	if isTmp && strings.HasSuffix(rest, ".tmp") {
		if w.tmps[key] == nil {
			w.tmps[key] = map[string]bool{}
		}
		w.tmps[key][name] = true
		return
	}
	if !isTmp || renamed {
		w.final[key] = true
	}
}

func (w *compileWatch) loop() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return // stop's deadline passed with nothing left to read
		}
		w.mu.Lock()
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			off += unix.SizeofInotifyEvent + int(ev.Len)
			dir, ok := w.dirs[ev.Wd]
			if !ok || name == "" {
				continue
			}
			if ev.Mask&unix.IN_ISDIR != 0 {
				_ = w.add(filepath.Join(dir, name), false)
				continue
			}
			w.record(name, ev.Mask&unix.IN_MOVED_TO != 0)
		}
		w.mu.Unlock()
	}
}

// compiles returns how many compilations were seen: for each cache key,
// the number of temporary files written for it, or one if the key appeared
// only under its final name.
func (w *compileWatch) compiles() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for key := range w.final {
		if len(w.tmps[key]) == 0 {
			n++
		}
	}
	for _, names := range w.tmps {
		n += len(names)
	}
	return n
}

// stop reads the events still queued, then closes the watch.
func (w *compileWatch) stop() {
	if w.f.SetReadDeadline(time.Now().Add(20*time.Millisecond)) != nil {
		w.f.Close() // not pollable: closing ends the read
	}
	<-w.done
	w.f.Close()
}

// isPreparedMark reports whether name is the empty file engine.Prepare
// leaves beside a module's cache entry: not a compilation.
func isPreparedMark(name string) bool { return strings.HasPrefix(name, "prepared-") }

// countFiles counts the compiled files under dir.
func countFiles(dir string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !isPreparedMark(d.Name()) {
			n++
		}
		return nil
	})
	return n
}
