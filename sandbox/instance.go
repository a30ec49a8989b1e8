package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/internal/tail"
	"github.com/safepool/safepool/internal/wire"
)

// instance is one instantiated module with its memory cap, its captured
// output, and its watchdog. It holds everything about an instance that does
// not depend on the engine; g is the engine's part, and host what the
// engine calls back into.
type instance struct {
	g     engine.Guest
	host  engine.Host
	limit uint64
	log   *tail.Buffer // guest stderr (and stdout of SDK modules)

	// sink receives safepool.result calls; set by whoever drives the call.
	sink func(status uint32, b []byte)

	// Watchdog. One timer serves every task of the instance: arming for a
	// task only moves the deadline, and the timer, when it fires early,
	// sleeps again until the current deadline. Resetting a timer per task
	// cost more than many guests' tasks. mu orders the check against arm
	// and disarm, so that a deadline armed for one task can never
	// interrupt the next: once disarm has returned, the check has either
	// fired completely or will see no deadline and do nothing. timedOut is
	// set before the engine is interrupted, so the failed call is
	// classified as a timeout and not as a trap.
	mu       sync.Mutex
	deadline time.Time // zero: no task is watched; written only by the task's goroutine, under mu
	fireAt   time.Time // when the timer is due, while pending
	pending  bool      // the timer is set and has not run its check yet
	timer    *time.Timer
	timedOut atomic.Bool
	wake     chan struct{} // closed on interruption; ends guest sleeps
	wakeOnce sync.Once

	broken bool // trapped, timed out or hit the cap: throw it away

	// resetter, with FreshInstance, resets the instance to its state right
	// after its start-up; nil when the engine cannot (see resetToStart).
	resetter engine.Resetter

	startBy      time.Time     // deadline of the start-up calls; zero for none
	startTimeout time.Duration // what set startBy, for messages
	starting     string        // the start-up call running, for messages; written under mu

	// stuck, when set, ends the worker: the engine cannot stop guest code
	// (engine.Options.NoInterrupt), so a start-up past its deadline is
	// stopped by ending the process. It is given the start-up call's name
	// and never returns.
	stuck func(what string)
}

// onResult is the safepool.result host function (engine.Host.Result).
// Engines turn its panics into traps.
func (inst *instance) onResult(status uint32, b []byte) {
	if inst.sink == nil {
		panic("safepool.result called with no task running")
	}
	inst.sink(status, b)
}

// sleep implements WASI sleeps (poll_oneoff on a clock). Unlike the system
// sleep it wakes when the watchdog interrupts the instance, so a guest that
// sleeps through its deadline is stopped on time. It reports whether the
// whole sleep passed.
func (inst *instance) sleep(ns int64) bool {
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-inst.wake:
		return false
	}
}

// arm starts the watchdog for one task. d <= 0 means no deadline.
func (inst *instance) arm(d time.Duration) { inst.armAt(time.Now(), d) }

// armAt is arm for a task that started at now.
func (inst *instance) armAt(now time.Time, d time.Duration) {
	// deadline is read here without mu: this goroutine is its only writer.
	if d <= 0 && inst.deadline.IsZero() {
		return // no deadline before, none now: nothing to lock
	}
	inst.mu.Lock()
	defer inst.mu.Unlock()
	if d <= 0 {
		inst.deadline = time.Time{}
		return
	}
	inst.setDeadline(now.Add(d), d)
}

// armUntil starts the watchdog for a deadline given as a time.
func (inst *instance) armUntil(deadline time.Time) {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	inst.setDeadline(deadline, max(time.Until(deadline), 0))
}

// setDeadline moves the deadline, which is wait from now, and makes sure
// the timer fires by then. The caller holds mu.
func (inst *instance) setDeadline(deadline time.Time, wait time.Duration) {
	inst.deadline = deadline
	if inst.pending && !inst.fireAt.After(deadline) {
		return // the timer comes first and will sleep on to the deadline
	}
	inst.pending, inst.fireAt = true, deadline
	if inst.timer == nil {
		inst.timer = time.AfterFunc(wait, inst.check)
	} else {
		inst.timer.Reset(wait)
	}
}

// disarm stops the watchdog. An instance whose watchdog fired is broken even
// if its call went on to succeed: the engine may already have been told to
// stop, and guest sleeps no longer wait.
func (inst *instance) disarm() {
	if !inst.deadline.IsZero() { // read without mu: see armAt
		inst.mu.Lock()
		inst.deadline = time.Time{}
		inst.mu.Unlock()
	}
	if inst.timedOut.Load() {
		inst.broken = true
	}
}

// check runs when the timer fires: it interrupts the task past its
// deadline, or sleeps again until the deadline of the task now running.
func (inst *instance) check() {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	if inst.deadline.IsZero() {
		inst.pending = false
		return
	}
	if left := time.Until(inst.deadline); left > 0 {
		inst.fireAt = inst.deadline
		inst.timer.Reset(left)
		return
	}
	inst.pending = false
	inst.timedOut.Store(true)
	inst.wakeOnce.Do(func() { close(inst.wake) })
	inst.g.Interrupt()
	if inst.stuck != nil {
		inst.stuck(inst.starting)
	}
}

// expireIfPast runs the watchdog's check now: it stops the task if its
// deadline has passed, and otherwise only makes sure the timer is due.
func (inst *instance) expireIfPast() {
	if inst.g == nil {
		return // still instantiating: the start-up has its own deadline
	}
	inst.check()
}

// deadlineNanos is the running task's deadline in Unix nanoseconds, 0 for
// none. Called from the task's goroutine, the deadline's only writer.
func (inst *instance) deadlineNanos() int64 {
	if inst.deadline.IsZero() {
		return 0
	}
	return inst.deadline.UnixNano()
}

// reset forgets the last task's log and cap hit, before the next task.
func (inst *instance) reset() {
	inst.log.Reset()
	inst.g.ClearCapHit()
}

// resetToStart makes the instance's state what it was right after its
// start-up, before any call: its linear memory, globals, log and cap hit.
// It reports false when it cannot, and the instance must then be thrown
// away: no snapshot, or the engine refused (engine.Resetter.Reset).
func (inst *instance) resetToStart() bool {
	if inst.resetter == nil || !inst.resetter.Reset() {
		return false
	}
	inst.reset()
	return true
}

// call runs an export of the guest.
func (inst *instance) call(ctx context.Context, fn engine.Export, args ...uint32) (uint32, error) {
	return inst.g.Call(ctx, fn, args...)
}

func (inst *instance) close() {
	inst.disarm()
	inst.mu.Lock()
	if inst.timer != nil {
		inst.timer.Stop()
	}
	inst.mu.Unlock()
	if inst.g != nil {
		inst.g.Close()
	}
}

// classify turns a failed task call into a status and a one-line message
// for the result's error. What else is known, such as the wasm stack trace,
// goes to the task's log. Order matters: a timeout makes the call fail too;
// a refused grow often ends in a trap.
func (inst *instance) classify(err error, timeout time.Duration) (wire.Status, string) {
	inst.broken = true
	msg, detail := splitError(err)
	switch {
	case inst.timedOut.Load():
		inst.note(detail) // where the guest was stopped
		return wire.StatusTimeout, fmt.Sprintf("task ran past its timeout of %s and was stopped", timeout)
	case inst.g.CapHit():
		inst.note(msg) // the trap that followed the refused grow
		inst.note(detail)
		return wire.StatusMemoryLimit, memoryLimitReached(inst.limit)
	}
	inst.note(detail)
	return wire.StatusError, msg
}

// memoryLimitReached is the error of a task that hit its memory cap.
func memoryLimitReached(limit uint64) string {
	return fmt.Sprintf("memory limit of %s reached", formatSize(limit))
}

// note adds what the host knows about a failure to the task's log, on lines
// of its own after the guest's output.
func (inst *instance) note(s string) {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return
	}
	if b := inst.log.Bytes(); len(b) > 0 && b[len(b)-1] != '\n' {
		_, _ = inst.log.Write([]byte("\n"))
	}
	_, _ = inst.log.Write([]byte(s + "\n"))
}

// splitError splits a failed call's error into its first line, for a
// result's error, and the rest: a trap's stack trace and any further lines.
// A nil error, a call that returned after its deadline fired, has neither.
func splitError(err error) (msg, detail string) {
	if err == nil {
		return "", ""
	}
	var trap *engine.TrapError
	if errors.As(err, &trap) {
		detail = trap.Trace
	}
	msg, rest, _ := strings.Cut(err.Error(), "\n")
	return msg, joinLines(rest, detail)
}

// joinLines joins the non-empty ones of a and b with a newline.
func joinLines(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "\n" + b
}

// exitCode returns the code of a guest's proc_exit.
func exitCode(err error) (uint32, bool) {
	var exit *engine.ExitError
	if errors.As(err, &exit) {
		return exit.Code, true
	}
	return 0, false
}

// capBuffer collects a command module's stdout up to a cap and remembers
// whether the guest wrote more.
type capBuffer struct {
	max  int
	buf  []byte
	over bool
}

// Write never reports a short write: a guest's runtime would retry it
// forever. Bytes past the cap are dropped and the task fails afterwards.
func (c *capBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := c.max - len(c.buf); len(p) > room {
		c.over = true
		p = p[:max(room, 0)]
	}
	c.buf = append(c.buf, p...)
	return n, nil
}
