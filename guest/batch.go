package guest

import (
	"encoding/binary"
	"fmt"
	"runtime"
)

// runBatch runs every record of a safepool_batch buffer in order, reporting
// one outcome per record. If buf ends inside a record, that record gets a
// statusError outcome saying so and no further records run.
//
// It yields to the scheduler after each task, for the reason given on
// [yield].
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

// yield lets the Go scheduler run other goroutines, the garbage collector's
// background workers among them, between tasks.
//
// A Go reactor runs each exported call on one goroutine that nothing
// preempts, so those workers only run when it blocks or yields. Whether the
// collector keeps up without them depends on the runtime's pacing: under
// wazero's default fake clock a module making 1 MiB of garbage per task ran
// out of a 64 MiB cap after about 300 tasks, through safepool_call and
// safepool_batch alike. With this call it stays under 10 MiB (see the
// garbage tests in internal/testguest).
//
// It costs about 2 µs per task in a wasip1 build. Reading the allocation
// counter from runtime/metrics to yield only after heavy tasks cost more
// than that, so every task yields.
func yield() {
	runtime.Gosched()
}
