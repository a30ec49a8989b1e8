package guest

import "errors"

// ErrNoHost is CallHost's error outside a WebAssembly worker (in a test on
// the host), where there is no host to call.
var ErrNoHost = errors.New("guest: no host to call: CallHost works only inside a safepool worker")

// HostError is CallHost's error when the host function failed: it
// returned an error or panicked, it is not one the pool provides, the
// input or output was over the pool's cap, or the task's deadline passed
// (the task is then stopped as a timeout).
type HostError struct{ Msg string }

func (e *HostError) Error() string { return e.Msg }

// CallHost calls the host function name, one of the pool's
// Config.HostFuncs, with in, and returns its output. It runs while the
// task's handler waits, in the pool's process, and its time counts
// against the task's timeout. Every failure is a *HostError; the guest
// goes on.
func CallHost(name string, in []byte) ([]byte, error) { return callHost(name, in) }
