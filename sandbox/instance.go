package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/safepool/safepool/internal/tail"
	"github.com/safepool/safepool/internal/wire"
)

// instance is one instantiated module with its memory cap, its captured
// output, and its watchdog. It holds everything about an instance that does
// not depend on the engine; g is the engine's part.
type instance struct {
	g      guest
	limit  uint64
	log    *tail.Buffer // guest stderr (and stdout of SDK modules)
	stdin  []byte       // command modules only
	stdout *capBuffer   // command modules only

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
}

// newInstance instantiates the module under a memory cap of limit bytes and
// runs its _initialize, if any, under the watchdog. stdout is nil for SDK
// modules, whose stdout goes to the log.
func newInstance(ctx context.Context, e engine, limit, logLimit uint64, timeout time.Duration, stdin []byte, stdout *capBuffer) (*instance, error) {
	inst := &instance{
		limit:  limit,
		log:    tail.New(int(logLimit)),
		stdin:  stdin,
		stdout: stdout,
		wake:   make(chan struct{}),
	}
	g, err := e.instantiate(ctx, inst)
	if err != nil {
		return nil, err
	}
	inst.g = g
	if g.has(exportInitialize) {
		inst.arm(timeout)
		_, err := g.call(ctx, exportInitialize)
		inst.disarm()
		if err != nil {
			hit := g.capHit()
			inst.close()
			if hit {
				return nil, errMemoryAtStart{limit}
			}
			return nil, fmt.Errorf("sandbox: the module's _initialize failed: %s", inst.describe(err))
		}
	}
	return inst, nil
}

type errMemoryAtStart struct{ limit uint64 }

func (e errMemoryAtStart) Error() string {
	return fmt.Sprintf("the module needs more than the memory cap of %d bytes to start", e.limit)
}

// onResult is the safepool.result host function. Engines turn its panics
// into traps.
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
	inst.deadline = now.Add(d)
	if inst.pending && !inst.fireAt.After(inst.deadline) {
		return // the timer comes first and will sleep on to the deadline
	}
	inst.pending, inst.fireAt = true, inst.deadline
	if inst.timer == nil {
		inst.timer = time.AfterFunc(d, inst.check)
	} else {
		inst.timer.Reset(d)
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
	inst.g.interrupt()
}

// call runs an export of the guest.
func (inst *instance) call(ctx context.Context, fn export, args ...uint32) (uint32, error) {
	return inst.g.call(ctx, fn, args...)
}

func (inst *instance) close() {
	inst.disarm()
	inst.mu.Lock()
	if inst.timer != nil {
		inst.timer.Stop()
	}
	inst.mu.Unlock()
	if inst.g != nil {
		inst.g.close()
	}
}

// classify turns a failed call into a status and a message. Order matters: a
// timeout makes the call fail too; a refused grow often ends in a trap.
func (inst *instance) classify(err error, timeout time.Duration) (wire.Status, string) {
	inst.broken = true
	switch {
	case inst.timedOut.Load():
		return wire.StatusTimeout, fmt.Sprintf("task ran past its timeout of %s and was stopped", timeout)
	case inst.g.capHit():
		return wire.StatusMemoryLimit, fmt.Sprintf("task hit its linear memory cap of %d bytes (%s)", inst.limit, inst.describe(err))
	}
	return wire.StatusError, inst.describe(err)
}

// describe turns a failed call into a short message, with the tail of the
// guest's stderr when there is one. Engines have already made the error
// text engine-independent.
func (inst *instance) describe(err error) string {
	msg := err.Error()
	if t := bytes.TrimSpace(lastLines(inst.log.Bytes(), 2048)); len(t) > 0 {
		msg += "; stderr: " + string(t)
	}
	return msg
}

// exitCode returns the code of a guest's proc_exit.
func exitCode(err error) (uint32, bool) {
	var exit *exitError
	if errors.As(err, &exit) {
		return exit.code, true
	}
	return 0, false
}

// lastLines returns at most n bytes from the end of b, cut at a line start.
func lastLines(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	b = b[len(b)-n:]
	if i := bytes.IndexByte(b, '\n'); i >= 0 && i < len(b)-1 {
		b = b[i+1:]
	}
	return b
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
