package guest

import (
	"io"
	"time"
	"unsafe"
)

// This file lets the external guest_test package reach the module's plain-Go
// machinery, which the wasip1 exports wrap.

// Recovered panics print their stacks nowhere in tests, unless a test asks
// for them with SetPanicLog.
func init() { panicLog = io.Discard }

// SetPanicLog makes w receive recovered panics' stacks until restore is
// called.
func SetPanicLog(w io.Writer) (restore func()) {
	old := panicLog
	panicLog = w
	return func() { panicLog = old }
}

// Status codes of safepool.result.
const (
	StatusOK      = statusOK
	StatusError   = statusError
	StatusUnknown = statusUnknown
)

// Arena is the buffer allocator behind safepool_alloc.
type Arena = arena

// Alloc calls alloc.
func (a *arena) Alloc(n int) []byte { return a.alloc(n) }

// Reset calls reset.
func (a *arena) Reset() { a.reset() }

// Chunks reports how many chunks the arena holds, in use or not.
func (a *arena) Chunks() int { return len(a.full) + 1 }

// Cap reports the size of the current chunk.
func (a *arena) Cap() int { return len(a.buf) }

var (
	Invoke         = invoke
	HandlerNames   = handlerNames
	UnknownMessage = unknownMessage
)

// EachRecord calls fn with the function name and input of each record in
// buf, in order, read as runBatch reads them. It returns runBatch's error,
// after calling fn for the complete records before it, if buf ends inside
// a record.
func EachRecord(buf []byte, fn func(name, in []byte)) error {
	for off := 0; off < len(buf); {
		name, in, next, ok := record(buf, off)
		if !ok {
			return malformed(off, len(buf))
		}
		fn(name, in)
		off = next
	}
	return nil
}

// DecodeInt is HandleJSON's fast decoding of a T: it stores the JSON
// number in into *v and returns true when the fast path takes it.
func DecodeInt[T any](in []byte, v *T) bool { return kindOf[T]().decode(in, unsafe.Pointer(v)) }

// AppendInt is HandleJSON's fast encoding of a T: the JSON encoding of v,
// in a slice of its own, and true if T is a basic integer type.
func AppendInt[T any](v T) ([]byte, bool) {
	k := kindOf[T]()
	if k.size == 0 {
		return nil, false
	}
	return append([]byte(nil), k.format(unsafe.Pointer(&v))...), true
}

// RunBatch runs a batch buffer, passing each outcome to report.
func RunBatch(buf []byte, report func(status int32, data []byte)) { runBatch(buf, report) }

// RunTask runs one task, passing its outcome to report.
func RunTask(name, in []byte, report func(status int32, data []byte)) { runTask(name, in, report) }

// Call runs the handler called name on input, as a worker does for a task,
// and returns the task's status as the host names it ("ok" or "error") and
// its output or error message. The examples use it in place of a worker.
func Call(name, input string) (status, output string) {
	s, out := invoke([]byte(name), []byte(input))
	if s != statusOK {
		return "error", string(out)
	}
	return "ok", string(out)
}

// YieldRun runs each of a series of tasks that take the given times,
// back to back, on a fake clock, with taskBegins before and yield after
// each, and reports how many times it read the clock and after which tasks
// it yielded.
func YieldRun(perTask []time.Duration) (readings int, yieldedAfter []int) {
	return YieldRunPaced(perTask, 0)
}

// YieldRunPaced is YieldRun with idle time between the tasks, as when each
// is a call of its own a host round trip after the last.
func YieldRunPaced(perTask []time.Duration, idle time.Duration) (readings int, yieldedAfter []int) {
	var now time.Duration
	task := 0
	oldClock, oldGosched := clock, gosched
	defer func() { clock, gosched = oldClock, oldGosched }()
	clock = func() time.Duration { readings++; return now }
	gosched = func() { yieldedAfter = append(yieldedAfter, task) }
	busy, taskStart, checkEvery, unchecked = 0, 0, firstCheckEvery, 0
	for i, d := range perTask {
		task = i
		taskBegins()
		now += d
		yield()
		now += idle
	}
	return readings, yieldedAfter
}
