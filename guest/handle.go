package guest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unsafe"
)

// handlers maps a task function name to its handler. It is filled by
// [Handle] and [HandleJSON] from init functions and only read afterwards.
var handlers = map[string]func(in []byte) ([]byte, error){}

// Handle registers fn as the task function called name.
//
// The host runs it for every task whose function name is name, passing the
// task's input bytes, and returns its output bytes as the task's result:
//
//	func init() {
//		guest.Handle("echo", func(in []byte) ([]byte, error) {
//			return in, nil
//		})
//	}
//
// A returned error, or a panic, becomes a task with status error whose
// message is the error's text (for a panic, "panic: " and the panic value).
// The module stays usable for the next task either way.
//
// # Notes
//
//   - Call Handle from an init function. A Go reactor module runs the init
//     functions of its packages when it is loaded, but never runs main.
//   - in is only valid until fn returns: copy it to keep it. fn may return
//     in, or a slice of it, as its output.
//   - Handle is not safe for concurrent use. Task functions run one at a
//     time, so fn needs no locking of its own.
//
// Handle panics if name is empty or contains a newline (names are listed
// one per line to the host), if fn is nil, or if name is already registered.
func Handle(name string, fn func(in []byte) ([]byte, error)) {
	switch {
	case name == "":
		panic("guest: Handle called with an empty name")
	case strings.ContainsAny(name, "\n\r"):
		panic(fmt.Sprintf("guest: handler name %q contains a newline", name))
	case fn == nil:
		panic(fmt.Sprintf("guest: Handle(%q) called with a nil function", name))
	}
	if _, dup := handlers[name]; dup {
		panic(fmt.Sprintf("guest: handler %q registered twice", name))
	}
	handlers[name] = fn
}

// HandleJSON registers fn as the task function called name, with its input
// decoded from JSON and its output encoded as JSON.
//
//	func init() {
//		guest.HandleJSON("square", func(n int) (int, error) {
//			return n * n, nil
//		})
//	}
//
// With that handler, input 7 gives output 49. Basic integer types skip
// encoding/json's reflection, which makes such a task several microseconds
// cheaper; the results are the same. Input that does not decode
// into In gives a task error that names the function and In's type; an
// output that cannot be encoded gives a task error too. Errors and panics
// from fn are handled as for [Handle], and the same notes and panics apply.
func HandleJSON[In, Out any](name string, fn func(In) (Out, error)) {
	if fn == nil {
		panic(fmt.Sprintf("guest: HandleJSON(%q) called with a nil function", name))
	}
	// The integer kinds are worked out once, here, not per task.
	inKind, outKind := kindOf[In](), kindOf[Out]()
	Handle(name, func(in []byte) ([]byte, error) {
		var v In
		if !inKind.decode(in, unsafe.Pointer(&v)) {
			var err error
			if v, err = decodeJSON[In](name, in); err != nil {
				return nil, err
			}
		}
		out, err := fn(v)
		if err != nil {
			return nil, err
		}
		// The host copies the output before the next task runs, so an
		// integer's digits can go into one buffer that every task reuses.
		if outKind.size != 0 {
			return outKind.format(unsafe.Pointer(&out)), nil
		}
		return encodeJSON(name, out)
	})
}

// decodeJSON and encodeJSON are HandleJSON's encoding/json paths. They are
// functions of their own so that the values the fast paths handle stay on
// the stack: encoding/json's reflection moves what it is given to the heap.
func decodeJSON[T any](name string, in []byte) (T, error) {
	var v T
	if err := json.Unmarshal(in, &v); err != nil {
		return v, fmt.Errorf("%s: input is not valid JSON for %T: %w", name, v, err)
	}
	return v, nil
}

func encodeJSON[T any](name string, out T) ([]byte, error) {
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot encode output as JSON: %w", name, err)
	}
	return b, nil
}

// handlerNames returns the registered names in sorted order.
func handlerNames() []string {
	names := make([]string, 0, len(handlers))
	for name := range handlers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
