package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/safepool/safepool/internal/tail"
	"github.com/safepool/safepool/internal/wire"
)

// instance is one instantiated module with its memory cap, its captured
// output, and its watchdog.
type instance struct {
	e      *engine
	mod    api.Module
	mem    api.Memory
	cap    *memCap
	limit  uint64
	log    *tail.Buffer // guest stderr (and stdout of SDK modules)
	stdout *capBuffer   // command modules only

	fAlloc, fCall, fBatch api.Function

	// sink receives safepool.result calls; set by whoever drives the call.
	sink func(status uint32, b []byte)

	// Watchdog. gen invalidates timers armed for earlier tasks; timedOut is
	// set by the timer before it closes the module, so the failed call is
	// classified as a timeout and not as a trap.
	gen      atomic.Uint64
	timer    *time.Timer
	timedOut atomic.Bool
	wake     chan struct{} // closed on interruption; ends guest sleeps
	wakeOnce sync.Once
	cancel   atomic.Pointer[context.CancelFunc] // cancels the running call

	broken bool // trapped, timed out or hit the cap: throw it away
}

// newInstance instantiates the module under a memory cap of limit bytes and
// runs its _initialize, if any, under the watchdog.
func (e *engine) newInstance(ctx context.Context, limit, logLimit uint64, timeout time.Duration, stdin []byte, stdout *capBuffer) (*instance, error) {
	inst := &instance{
		e:      e,
		cap:    &memCap{limit: limit},
		limit:  limit,
		log:    tail.New(int(logLimit)),
		stdout: stdout,
		wake:   make(chan struct{}),
	}
	cfg := e.base.WithStderr(inst.log).WithNanosleep(inst.sleep)
	if stdout != nil {
		cfg = cfg.WithStdout(stdout).WithStdin(bytes.NewReader(stdin))
	} else {
		cfg = cfg.WithStdout(inst.log)
	}
	mod, err := e.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, inst.cap), e.cm, cfg)
	if err != nil {
		if inst.cap.hit.Load() {
			return nil, errMemoryAtStart{limit}
		}
		return nil, fmt.Errorf("sandbox: instantiate module: %w", err)
	}
	inst.mod = mod
	inst.mem = mod.Memory()
	inst.fAlloc = mod.ExportedFunction("safepool_alloc")
	inst.fCall = mod.ExportedFunction("safepool_call")
	inst.fBatch = mod.ExportedFunction("safepool_batch")
	if init := mod.ExportedFunction("_initialize"); init != nil {
		inst.arm(timeout)
		_, err := inst.call(ctx, init)
		inst.disarm()
		if err != nil {
			inst.close(ctx)
			if inst.cap.hit.Load() {
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

func (inst *instance) onResult(status uint32, b []byte) {
	if inst.sink == nil {
		panic("safepool.result called with no task running")
	}
	inst.sink(status, b)
}

// sleep implements WASI sleeps (poll_oneoff on a clock). Unlike the system
// sleep it wakes when the watchdog interrupts the instance, so a guest that
// sleeps through its deadline is stopped on time.
func (inst *instance) sleep(ns int64) {
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-inst.wake:
	}
}

// arm starts the watchdog for one task. d <= 0 means no deadline.
func (inst *instance) arm(d time.Duration) {
	g := inst.gen.Add(1)
	if d <= 0 {
		return
	}
	if inst.timer == nil {
		inst.timer = time.AfterFunc(d, func() { inst.fire(g) })
		return
	}
	inst.timer.Stop()
	inst.timer = time.AfterFunc(d, func() { inst.fire(g) })
}

func (inst *instance) disarm() {
	inst.gen.Add(1)
	if inst.timer != nil {
		inst.timer.Stop()
	}
}

func (inst *instance) fire(g uint64) {
	if inst.gen.Load() != g {
		return // the task it was armed for has ended
	}
	inst.timedOut.Store(true)
	inst.wakeOnce.Do(func() { close(inst.wake) })
	// Cancelling the call's context makes wazero mark the module closed
	// without freeing its memory; the compiled code checks that mark at
	// every loop header and function entry, so the guest stops wherever it
	// is. (Module.CloseWithExitCode would free the linear memory under the
	// running guest.)
	if c := inst.cancel.Load(); c != nil {
		(*c)()
	}
}

// call runs an exported function under a context the watchdog can cancel.
func (inst *instance) call(ctx context.Context, f api.Function, params ...uint64) ([]uint64, error) {
	cctx, cancel := context.WithCancel(ctx)
	inst.cancel.Store(&cancel)
	res, err := f.Call(cctx, params...)
	inst.cancel.Store(nil)
	cancel()
	return res, err
}

func (inst *instance) close(ctx context.Context) {
	inst.disarm()
	if inst.mod != nil {
		_ = inst.mod.Close(ctx)
	}
}

// classify turns a failed call into a status and a message. Order matters: a
// timeout closes the module, which also makes the call fail; a refused grow
// often ends in a trap.
func (inst *instance) classify(err error, timeout time.Duration) (wire.Status, string) {
	inst.broken = true
	switch {
	case inst.timedOut.Load():
		return wire.StatusTimeout, fmt.Sprintf("task ran past its timeout of %s and was stopped", timeout)
	case inst.cap.hit.Load():
		return wire.StatusMemoryLimit, fmt.Sprintf("task hit its linear memory cap of %d bytes (%s)", inst.limit, inst.describe(err))
	}
	return wire.StatusError, inst.describe(err)
}

// describe turns an engine error into a short message, with the tail of the
// guest's stderr when there is one.
func (inst *instance) describe(err error) string {
	var msg string
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		msg = fmt.Sprintf("guest exited with code %d", exit.ExitCode())
	} else {
		msg = err.Error()
		// Keep the trap and a few frames of the stack, not all of it.
		if lines := strings.Split(msg, "\n"); len(lines) > 8 {
			msg = strings.Join(lines[:8], "\n") + "\n\t..."
		}
		msg = strings.TrimPrefix(msg, "wasm error: ")
	}
	if t := bytes.TrimSpace(lastLines(inst.log.Bytes(), 2048)); len(t) > 0 {
		msg += "; stderr: " + string(t)
	}
	return msg
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
