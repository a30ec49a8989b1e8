package guest

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"time"
)

// runBatch runs every record of a safepool_batch buffer in order, reporting
// one outcome per record. If buf ends inside a record, that record gets a
// statusError outcome saying so and no further records run.
//
// After each task it yields to the scheduler if it is due, for the
// reason given on [yield].
func runBatch(buf []byte, report reporter) {
	err := eachRecord(buf, func(name, in []byte) {
		runTask(name, in, report)
		yield()
	})
	if err != nil {
		report(statusError, []byte(err.Error()))
	}
}

// eachRecord calls fn with the function name and input of each record in
// buf, in order. A record is a little-endian u32 name length, the name, a
// little-endian u32 input length and the input. It returns an error, after
// calling fn for the complete records before it, if buf ends inside a
// record.
func eachRecord(buf []byte, fn func(name, in []byte)) error {
	for off := 0; off < len(buf); {
		start := off
		name, next, ok := field(buf, off)
		if !ok {
			return malformed(start, len(buf))
		}
		in, next, ok := field(buf, next)
		if !ok {
			return malformed(start, len(buf))
		}
		fn(name, in)
		off = next
	}
	return nil
}

// field reads one length-prefixed field at off. It returns the field, the
// offset just past it, and false if buf is too short to hold it.
func field(buf []byte, off int) (data []byte, next int, ok bool) {
	if len(buf)-off < 4 {
		return nil, 0, false
	}
	n := binary.LittleEndian.Uint32(buf[off:])
	off += 4
	// Compare in uint64 so a huge n cannot wrap around.
	if uint64(n) > uint64(len(buf)-off) {
		return nil, 0, false
	}
	end := off + int(n)
	return buf[off:end:end], end, true
}

func malformed(start, size int) error {
	return fmt.Errorf("guest: malformed batch: the record at byte %d runs past the end of the %d-byte batch", start, size)
}

// The yield policy's settings (see [yield]).
const (
	yieldAfter    = 100 * time.Microsecond // yield once this has passed since the last yield
	maxCheckEvery = 32                     // read the clock at least every this many tasks
)

// The yield policy's clock and scheduler, replaced in tests. Times are
// since epoch: time.Since reads only the monotonic clock, one host call.
var (
	epoch   = time.Now()
	clock   = func() time.Duration { return time.Since(epoch) }
	gosched = runtime.Gosched
)

// The yield policy's state.
var (
	lastYield  time.Duration // when the module last yielded
	lastCheck  time.Duration // when it last read the clock
	checkEvery = 1           // tasks between clock readings
	unchecked  int           // tasks since the last reading
)

// yield lets the Go scheduler run other goroutines, the garbage collector's
// background workers among them, once at least yieldAfter has passed since
// the last time it did. It is called after every task.
//
// A Go reactor runs each exported call on one goroutine that nothing
// preempts, so those workers only run when it blocks or yields. The
// collector's allocation assists keep the heap bounded on their own as long
// as the guest's clock moves (the runtime's GC CPU limiter judges the
// assists' share by it), and the sandbox gives real clocks. Under a clock
// that barely moves they stop (1 MiB of garbage a task outgrew a 64 MiB cap
// within 300 tasks), and a handler that keeps a large heap live and makes
// much garbage on top of it leans on the background workers harder, so the
// module yields too; but a yield costs about 2 µs in a wasip1
// build, and reading the clock about 1 µs, both more than a small task. So
// the clock is read after every task only while tasks are slow (a reading
// finds yieldAfter gone since the last one: a task that makes a megabyte of
// garbage), and after up to maxCheckEvery tasks while they are fast. A
// module of small tasks then yields about every 100 µs and reads the clock
// every few microseconds; a garbage-heavy one yields after every task, and
// at most maxCheckEvery tasks after it turns heavy. The garbage tests in
// internal/testguest show both.
func yield() {
	if unchecked++; unchecked < checkEvery {
		return
	}
	unchecked = 0
	now := clock()
	switch gap := now - lastCheck; {
	case gap >= yieldAfter:
		checkEvery = 1
	case gap < yieldAfter/8:
		checkEvery = min(2*checkEvery, maxCheckEvery)
	}
	lastCheck = now
	if now-lastYield < yieldAfter {
		return
	}
	gosched()
	lastYield = clock()
	lastCheck = lastYield
}
