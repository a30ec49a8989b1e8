package guest

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// Status codes passed to safepool.result; see ABI.md.
const (
	statusOK      int32 = 0 // the bytes are the task's output
	statusError   int32 = 1 // the bytes are an error message
	statusUnknown int32 = 2 // the bytes name the unknown function
)

// reporter hands one task's outcome to the host. In a wasip1 build it calls
// the safepool.result import; tests record the calls instead. The host copies
// data before it returns, so data may alias memory the guest reuses.
type reporter func(status int32, data []byte)

// runTask runs the handler called name on in and reports the outcome exactly
// once, whatever the handler does short of exiting the process or trapping.
func runTask(name, in []byte, report reporter) {
	status, out := invoke(name, in)
	report(status, out)
}

// panicLog receives the message and stack of each recovered panic. It is
// the module's stderr, whose tail the host keeps as the task's log: the
// task's error says what panicked, the log says where.
var panicLog io.Writer = os.Stderr

// invoke runs the handler called name on in, turning a returned error or a
// panic into statusError and an unregistered name into statusUnknown.
func invoke(name, in []byte) (status int32, out []byte) {
	defer func() {
		if v := recover(); v != nil {
			status, out = statusError, recovered(v)
		}
	}()
	return callHandler(name, in)
}

// callHandler is invoke without the recover: its caller recovers a panic of the
// handler, or of err.Error, which is user code too.
func callHandler(name, in []byte) (status int32, out []byte) {
	fn := lookup(name)
	if fn == nil {
		return statusUnknown, []byte(unknownMessage(string(name)))
	}
	out, err := fn(in)
	if err != nil {
		return statusError, []byte(err.Error())
	}
	return statusOK, out
}

// recovered logs a recovered panic's message and stack and returns the
// message, the task's error. It must be called from the deferred function
// that recovered, so that the stack is the panic's.
func recovered(v any) []byte {
	msg := panicMessage(v)
	fmt.Fprintf(panicLog, "%s\n\n%s", msg, debug.Stack())
	return []byte(msg)
}

// The handler lookup caches the last name found. A batch's tasks nearly
// always call one function, and in a wasip1 build hashing the name for
// the map (without the host's AES instructions) cost about a tenth of a
// small task's time in a worker. A name stays bound to its handler for
// good (Handle refuses a second registration), so the cache never goes
// stale.
var (
	lastName    string
	lastHandler func(in []byte) ([]byte, error)
)

// lookup returns the handler called name, or nil.
func lookup(name []byte) func(in []byte) ([]byte, error) {
	if lastHandler != nil && sameName(name, lastName) {
		return lastHandler
	}
	fn, ok := handlers[string(name)]
	if ok {
		lastName, lastHandler = string(name), fn
	}
	return fn
}

// sameName reports whether name spells s. It compares byte by byte, inline,
// where string(name) == s calls the runtime's memequal: a handler's name is
// a few bytes, shorter than the call is worth.
func sameName(name []byte, s string) bool {
	if len(name) != len(s) {
		return false
	}
	for i, c := range name {
		if c != s[i] {
			return false
		}
	}
	return true
}

// panicMessage formats a recovered panic value the way the ABI reports it.
func panicMessage(v any) string {
	return "panic: " + fmt.Sprint(v)
}

// unknownMessage is the status-2 message for a function name that has no
// handler. It lists the handlers the module does have, so that a typo in
// the task's function name is easy to spot.
func unknownMessage(name string) string {
	names := handlerNames()
	if len(names) == 0 {
		return fmt.Sprintf("unknown function %q; this module has no handlers (register them with guest.Handle in an init function)", name)
	}
	return fmt.Sprintf("unknown function %q; this module has: %s", name, strings.Join(names, ", "))
}
