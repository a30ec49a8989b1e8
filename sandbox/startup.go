package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/internal/tail"
	"github.com/safepool/safepool/internal/wire"
)

// An instance's start-up is its instantiation, its _initialize and, the
// first time, the handshake calls. It runs under the start timeout
// (wire.Init.StartTimeout), measured from the start of instantiation, and
// never under a task's timeout: a task's deadline covers only the task's
// own call, so that a Go guest whose _initialize takes milliseconds still
// serves tasks with a deadline of a microsecond. A start function in the
// module's start section runs inside the engine's instantiation, where no
// watchdog can reach it yet; the host's handshake timeout is its backstop.

// startError is an instance that could not start. msg is one line; detail
// holds what else is known (the guest's output, a wasm stack trace), for a
// task's log or for the lines after the first of a Fatal message.
type startError struct {
	status wire.Status // StatusError or StatusMemoryLimit
	msg    string
	detail []byte
}

func (e *startError) Error() string {
	if len(e.detail) == 0 {
		return e.msg
	}
	return e.msg + "\n" + string(e.detail)
}

// newInstance instantiates the module under a memory cap of limit bytes and
// runs its _initialize, if any. startTimeout bounds the whole start-up,
// the handshake's calls included (see startCall); 0 means no deadline.
// stdout is nil for SDK modules, whose stdout goes to the log. Every error
// is a *startError.
//
// stuck is nil when the engine can interrupt guest code; otherwise it is
// called, from the watchdog, when a start-up call runs past the start
// timeout, and must end the process (see instance.stuck).
func newInstance(ctx context.Context, c engine.Compiled, limit, logLimit uint64, startTimeout time.Duration, stdin []byte, stdout *capBuffer, stuck func(string), grants engine.Grants, hostCall func(name, in []byte, deadline int64) int32, hostTake func() []byte) (*instance, error) {
	inst := &instance{
		limit:        limit,
		log:          tail.New(int(logLimit)),
		wake:         make(chan struct{}),
		startTimeout: startTimeout,
		stuck:        stuck,
	}
	inst.host = engine.Host{
		Limit:       limit,
		Stdin:       stdin,
		Log:         inst.log,
		Sleep:       inst.sleep,
		Result:      inst.onResult,
		Interrupted: inst.timedOut.Load,
	}
	inst.host.Grants = grants
	if hostCall != nil {
		// The host function gets the task's deadline, and a call that
		// comes back after it stops the task now, as a timeout, rather
		// than let it go on until the watchdog's timer fires: the host
		// gave up at the same deadline.
		inst.host.HostCall = func(name, in []byte) int32 {
			n := hostCall(name, in, inst.deadlineNanos())
			inst.expireIfPast()
			return n
		}
		inst.host.HostTake = hostTake
	}
	if stdout != nil { // a nil *capBuffer in the interface would not be nil
		inst.host.Stdout = stdout
	}
	if startTimeout > 0 {
		inst.startBy = time.Now().Add(startTimeout)
	}
	g, err := c.Instantiate(ctx, &inst.host)
	if err != nil {
		if mem := (*engine.MemoryAtStartError)(nil); errors.As(err, &mem) {
			return nil, &startError{status: wire.StatusMemoryLimit, msg: fmt.Sprintf(
				"sandbox: the module needs more than the memory cap of %s to start; raise MemoryLimit (--memory)", formatSize(mem.Limit))}
		}
		msg, detail := splitError(err)
		inst.note(detail)
		return nil, &startError{status: wire.StatusError, msg: msg, detail: inst.log.Bytes()}
	}
	inst.g = g
	if g.Has(engine.ExportInitialize) {
		if _, err := inst.startCall(ctx, engine.ExportInitialize); err != nil {
			err := inst.startFailed("the module's _initialize", err)
			inst.close()
			return nil, err
		}
	}
	return inst, nil
}

// startCall runs an export as part of the instance's start-up, under the
// start-up's deadline. A call that ended after the deadline fails even if
// it returned, with errPastStart: the watchdog may have interrupted the
// engine, whose next calls would fail, and a start-up that ran past its
// deadline is refused whether or not the watchdog was quick enough.
func (inst *instance) startCall(ctx context.Context, fn engine.Export, args ...uint32) (uint32, error) {
	if !inst.startBy.IsZero() {
		inst.mu.Lock()
		inst.starting = startCallName(fn)
		inst.mu.Unlock()
		inst.armUntil(inst.startBy)
	}
	v, err := inst.g.Call(ctx, fn, args...)
	inst.disarm()
	if err == nil && (inst.timedOut.Load() || !inst.startBy.IsZero() && time.Now().After(inst.startBy)) {
		err = errPastStart
	}
	return v, err
}

// startCallName names a start-up call in messages, as startFailed's
// callers do.
func startCallName(fn engine.Export) string {
	if fn == engine.ExportInitialize {
		return "the module's _initialize"
	}
	return fn.String()
}

// startTimedOut is the message of a start-up call, named what, that ran
// past the start timeout.
func startTimedOut(what string, timeout time.Duration) string {
	return fmt.Sprintf("sandbox: %s ran past the start timeout of %s and was stopped; raise the pool's StartTimeout", what, timeout)
}

// errPastStart is a start-up call that returned, but after the start-up's
// deadline: the watchdog had not stopped it yet, or had stopped the engine
// too late to fail the call.
var errPastStart = errors.New("the start-up ran past its deadline")

// startFailed turns the failure of the start-up call named what into a
// *startError. The instance is broken afterwards.
func (inst *instance) startFailed(what string, err error) *startError {
	inst.broken = true
	msg, detail := splitError(err)
	switch {
	case inst.timedOut.Load() || errors.Is(err, errPastStart):
		inst.note(detail) // where it was stopped
		return &startError{status: wire.StatusError, detail: inst.log.Bytes(),
			msg: startTimedOut(what, inst.startTimeout)}
	case inst.g.CapHit():
		inst.note(msg)
		inst.note(detail)
		return &startError{status: wire.StatusMemoryLimit, detail: inst.log.Bytes(),
			msg: fmt.Sprintf("sandbox: %s needs more than the memory cap of %s; raise MemoryLimit (--memory)", what, formatSize(inst.limit))}
	}
	inst.note(detail)
	return &startError{status: wire.StatusError, msg: fmt.Sprintf("sandbox: %s failed: %s", what, msg), detail: inst.log.Bytes()}
}

// checkStartMemory refuses a cap of limit bytes below the pages of linear
// memory the module declares it needs before any of its code runs: the
// worker's cap at the handshake, whose message says what to raise, or a
// task's own (forTask).
func checkStartMemory(pages, limit uint64, forTask bool) *startError {
	need := pages * pageSize
	if need <= limit {
		return nil
	}
	if forTask {
		return &startError{status: wire.StatusMemoryLimit, msg: fmt.Sprintf(
			"the module needs %s of linear memory just to start (its memory's minimum is %d pages), above the task's memory cap of %s",
			formatSize(need), pages, formatSize(limit))}
	}
	return &startError{status: wire.StatusMemoryLimit, msg: fmt.Sprintf(
		"sandbox: the module needs %s of linear memory just to start (its memory's minimum is %d pages), above the memory cap of %s; raise MemoryLimit (--memory) to at least %s",
		formatSize(need), pages, formatSize(limit), formatSize(need))}
}

// pageSize is the size of a WebAssembly page.
const pageSize = 64 << 10

// formatSize writes a number of bytes for people: in the largest binary
// unit that shows it exactly with at most two decimals (64 MiB, 1.5 GiB,
// 640 KiB), or in bytes (100000 bytes).
func formatSize(n uint64) string {
	for _, u := range []struct {
		name string
		size uint64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size*100%u.size == 0 {
			return strconv.FormatFloat(float64(n)/float64(u.size), 'f', -1, 64) + " " + u.name
		}
	}
	if n == 1 {
		return "1 byte"
	}
	return strconv.FormatUint(n, 10) + " bytes"
}
