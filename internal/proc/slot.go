package proc

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

const slotSize = 4096

// Slot is a page of memory shared by the host and one worker. The worker
// stores the ID of the task it is running (0 when idle) and when the task
// started. Stores are atomic, so the host may read it at any time; it reads it
// after a death to blame the running task, and while waiting to notice a task
// that overran its deadline.
type Slot struct {
	mem []byte
}

func newSlot() (*Slot, *os.File, error) {
	fd, err := unix.MemfdCreate("safepool-slot", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("proc: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "safepool-slot")
	if err := unix.Ftruncate(fd, slotSize); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("proc: ftruncate slot: %w", err)
	}
	s, err := mapSlot(fd)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return s, f, nil
}

func mapSlot(fd int) (*Slot, error) {
	mem, err := unix.Mmap(fd, 0, slotSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("proc: mmap slot: %w", err)
	}
	return &Slot{mem: mem}, nil
}

func (s *Slot) word(i int) *uint64 { return (*uint64)(unsafe.Pointer(&s.mem[i*8])) }

// SetRunning records that task id started at start (Unix nanoseconds).
// id 0 means idle.
func (s *Slot) SetRunning(id uint64, start int64) {
	if s == nil {
		return
	}
	atomic.StoreUint64(s.word(1), uint64(start))
	atomic.StoreUint64(s.word(0), id)
}

// Running returns the task the worker last recorded as running, and when it
// started. id is 0 when the worker was idle.
func (s *Slot) Running() (id uint64, start int64) {
	if s == nil {
		return 0, 0
	}
	id = atomic.LoadUint64(s.word(0))
	start = int64(atomic.LoadUint64(s.word(1)))
	return id, start
}

func (s *Slot) unmap() {
	if s != nil && s.mem != nil {
		_ = unix.Munmap(s.mem)
		s.mem = nil
	}
}
