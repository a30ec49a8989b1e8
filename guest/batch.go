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
	for off := 0; off < len(buf); {
		var err error
		if off, err = runRecords(buf, off, report); err != nil {
			report(statusError, []byte(err.Error()))
			return
		}
	}
}

// runRecords runs the records of buf from the one at off, and returns
// where the records it did not run start: len(buf) once all have run, or
// the end of a record whose handler panicked, which it reports. One
// deferred recover covers the records it runs: a defer per task cost a
// few percent of a small task's time in a wasip1 build. It returns an
// error, after running the complete records before it, if buf ends inside
// a record.
func runRecords(buf []byte, off int, report reporter) (next int, err error) {
	end := -1 // the end of the record whose handler is running, if any
	defer func() {
		if end < 0 {
			return // not a handler's panic: let it go on
		}
		if v := recover(); v != nil {
			report(statusError, recovered(v))
			yield()
			next, err = end, nil
		}
	}()
	for off < len(buf) {
		name, in, recEnd, ok := record(buf, off)
		if !ok {
			return len(buf), malformed(off, len(buf))
		}
		end = recEnd
		taskBegins()
		// callHandler's common case, written out here: the handler found
		// for the record before, called with no call between. In a wasip1
		// build each Go call costs a stack check and an unwinding check.
		var status int32
		var out []byte
		if fn := lastHandler; fn != nil && sameName(name, lastName) {
			var err error
			if out, err = fn(in); err != nil {
				status, out = statusError, []byte(err.Error())
			}
		} else {
			status, out = callHandler(name, in)
		}
		report(status, out)
		yield()
		end, off = -1, recEnd
	}
	return off, nil
}

// record reads the record at off: its function name, its input and the
// offset just past it, and false if buf ends inside it. A record is a
// little-endian u32 name length, the name, a little-endian u32 input
// length and the input. It reads both lengths itself, with no call: in a
// wasip1 build a call costs more than the reading.
func record(buf []byte, off int) (name, in []byte, next int, ok bool) {
	// Lengths are compared in uint64 so that a huge one cannot wrap around.
	if len(buf)-off < 4 {
		return nil, nil, 0, false
	}
	n := binary.LittleEndian.Uint32(buf[off:])
	off += 4
	if uint64(n)+4 > uint64(len(buf)-off) {
		return nil, nil, 0, false
	}
	end := off + int(n)
	name = buf[off:end:end]
	off = end
	n = binary.LittleEndian.Uint32(buf[off:])
	off += 4
	if uint64(n) > uint64(len(buf)-off) {
		return nil, nil, 0, false
	}
	end = off + int(n)
	return name, buf[off:end:end], end, true
}

func malformed(start, size int) error {
	return fmt.Errorf("guest: malformed batch: the record at byte %d runs past the end of the %d-byte batch", start, size)
}

// The yield policy's settings (see [yield]).
const (
	yieldAfter    = 100 * time.Microsecond // yield once tasks have run this long since the last yield
	maxCheckEvery = 32                     // time a task at least every this many tasks
	// firstCheckEvery is checkEvery at start-up: the first task timed is
	// the second. A FreshInstance worker resets the module to its state
	// after start-up before every task, so its tasks never read the clock
	// nor yield: the reset throws their garbage away, and two clock
	// readings a task cost more than the task (bench/README.md).
	firstCheckEvery = 2
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
	busy       time.Duration     // tasks' own time since the last yield, estimated
	taskStart  time.Duration     // when the task being timed started
	checkEvery = firstCheckEvery // tasks between timed ones
	unchecked  int               // tasks since the last timed one
)

// taskBegins is called before every task: it reads the clock when the
// task is one [yield] times.
func taskBegins() {
	if unchecked+1 >= checkEvery {
		taskStart = clock()
	}
}

// yield lets the Go scheduler run other goroutines, the garbage collector's
// background workers among them, once tasks have run for at least
// yieldAfter since the last time it did. It is called after every task,
// and [taskBegins] before it.
//
// A Go reactor runs each exported call on one goroutine that nothing
// preempts, so those workers only run when it blocks or yields. The
// collector's allocation assists keep the heap bounded on their own as long
// as the guest's clock moves (the runtime's GC CPU limiter judges the
// assists' share by it), and the sandbox gives real clocks. Under a clock
// that barely moves they stop (1 MiB of garbage a task outgrew a 64 MiB cap
// within 300 tasks), and a handler that keeps a large heap live and makes
// much garbage on top of it leans on the background workers harder, so the
// module yields too; but a yield costs about 2 µs in a wasip1 build, more
// when it runs the collector's work, and reading the clock about 1 µs,
// both more than a small task. So one task in checkEvery is timed, from
// its start to its end: every task while tasks are slow (a timed one took
// yieldAfter: a task that makes a megabyte of garbage), up to one in
// maxCheckEvery while they are fast; and the module yields once the timed
// tasks' times, each counted for the tasks since the last timed one, add
// up to yieldAfter. A module of small tasks then yields after about 100 µs
// of its own work and reads the clock twice every few dozen tasks; a
// garbage-heavy one yields after every task, and at most maxCheckEvery
// tasks after it turns heavy. The garbage tests in internal/testguest show
// both.
//
// It counts the tasks' time, not the time between yields: the calls of
// one-task batches (an Apply loop) come a host round trip apart, and a
// yield every 100 µs of wall time was then a yield every few tasks, which
// made one call in five or so several times slower than the others
// (bench/README.md).
func yield() {
	// Only this test is inlined into the task loop; the rest is a call.
	if unchecked++; unchecked >= checkEvery {
		timedYield()
	}
}

// timedYield is the part of [yield] that runs after a timed task.
func timedYield() {
	n := unchecked
	unchecked = 0
	took := clock() - taskStart
	switch {
	case took >= yieldAfter:
		checkEvery = 1
	case took < yieldAfter/8:
		checkEvery = min(2*checkEvery, maxCheckEvery)
	}
	if busy += took * time.Duration(n); busy < yieldAfter {
		return
	}
	gosched()
	busy = 0
}
