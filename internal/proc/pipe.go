package proc

import (
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pipeSize is the buffer asked for on the pipes between host and worker:
// large enough that the host can queue a whole batch while the worker runs
// the one before. Linux lets any user go up to /proc/sys/fs/pipe-max-size
// (1 MiB by default); when the kernel refuses, the default (64 KiB) stays.
const pipeSize = 1 << 20

// growPipe asks for pipeSize bytes of buffer on f's pipe, best effort, and
// returns the buffer's size afterwards (0 when it cannot tell).
func growPipe(f *os.File) int {
	control(f, func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
	return pipeBufSize(f)
}

// pipeBufSize returns the size of f's pipe buffer, or 0.
func pipeBufSize(f *os.File) int {
	size := 0
	control(f, func(fd uintptr) {
		if n, err := unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0); err == nil {
			size = n
		}
	})
	return size
}

// control runs fn on f's descriptor. SyscallConn, not Fd: Fd would switch
// the descriptor to blocking mode.
func control(f *os.File, fn func(fd uintptr)) {
	if c, err := f.SyscallConn(); err == nil {
		_ = c.Control(fn)
	}
}

// InputRoom returns how many bytes can be written to the worker's input now
// without blocking: the pipe's buffer less what the worker has not read
// yet. It returns 0 when it cannot tell.
func (p *Process) InputRoom() int { return pipeRoom(p.toW, p.toWSize) }

// pipeRoom returns the free bytes in the buffer, of size bytes, of f's
// pipe, or 0.
func pipeRoom(f *os.File, size int) int {
	room := 0
	control(f, func(fd uintptr) {
		if queued, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ); err == nil { // FIONREAD
			room = max(size-queued, 0)
		}
	})
	return room
}

// How long each side polls its input pipe before parking (see SpinReader).
// A worker always polls after a batch: it has nothing else to do, and the
// next batch of a request–reply caller is one round trip away. The host
// polls for results only when its driver asks (a lone batch in flight and
// nothing queued: someone is waiting for this answer), so that a pool
// running a big map does not take CPU from its own workers.
const (
	hostSpin   = 100 * time.Microsecond
	WorkerSpin = 100 * time.Microsecond
)

// pollAlone is how long a yielding SpinReader looks in a tight loop before
// it starts to yield: about the host's turn-around between an answer and
// the next Apply's batch on an idle machine.
const pollAlone = 20 * time.Microsecond

// SpinReader reads from a non-blocking pipe, polling it for a short while
// before it parks on the runtime's poller. Parking costs a thread wake-up
// when the bytes come, which on a virtual machine with idle CPUs is tens of
// microseconds, more than a whole round trip through a worker; polling
// keeps a request–reply exchange (an Apply) at a few microseconds.
//
// A yielding SpinReader (the worker's) looks in a tight loop for its first
// pollAlone, where a quick caller's next batch comes, then gives up its CPU
// with sched_yield(2) before each look. On an idle CPU that returns at once
// (about a microsecond); on a busy machine it lets whatever else wants this
// CPU run first, such as the host's caller and driver, which must run
// before the next batch can come. On two loaded cores that cut Apply's p99
// by about 40% at a cost of 1–2 µs of p50; on a quiet machine it changed
// neither p99 nor, beyond a microsecond, p50. Yielding from the first look
// cost more p50, and yielding on the host's side as well made p50 three
// to five times slower (see bench/README.md, "Apply p99: pollers that
// yield"), so the host's poller does not yield.
type SpinReader struct {
	f      *os.File
	conn   syscall.RawConn // f's, nil when f has none (then reads just block)
	budget time.Duration
	yield  bool // sched_yield between looks
	spin   atomic.Bool
}

// NewSpinReader returns a SpinReader on f, which must be a pollable (non-
// blocking) descriptor, polling for up to budget on each read that has to
// wait, until SetSpin(false). With yield it gives up its CPU between looks.
func NewSpinReader(f *os.File, budget time.Duration, yield bool) *SpinReader {
	s := &SpinReader{f: f, budget: budget, yield: yield}
	s.conn, _ = f.SyscallConn()
	s.spin.Store(true)
	return s
}

// SetSpin turns polling on or off for the reads that follow. It may be
// called from any goroutine.
func (s *SpinReader) SetSpin(on bool) { s.spin.Store(on) }

func (s *SpinReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.conn == nil {
		return s.f.Read(p)
	}
	var (
		n     int
		rerr  error
		start time.Time
		spin  = s.spin.Load()
		// past pollAlone, a yielding reader yields before each look
		yielding bool
	)
	err := s.conn.Read(func(fd uintptr) bool {
		for i := 0; ; i++ {
			n, rerr = unix.Read(int(fd), p)
			if rerr == unix.EINTR {
				continue
			}
			if rerr != unix.EAGAIN {
				return true
			}
			if !spin {
				return false // park on the poller, which calls us again
			}
			if i == 0 {
				start = time.Now()
			} else if yielding || i&31 == 0 {
				waited := time.Since(start)
				if waited > s.budget {
					spin = false
					return false
				}
				yielding = s.yield && waited > pollAlone
			}
			if yielding {
				yield()
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, rerr
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// yield gives up the CPU to any thread waiting for it (sched_yield(2)),
// and returns at once when none is. Raw: the call does not block, so the
// runtime need not know about it.
func yield() { _, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }
