// Package hostconn is the host's connection to one worker process: it
// starts the process, runs the handshake, sends batches, and turns what
// comes back, including the process's death, into events. The worker side
// of the connection is package sandbox.
package hostconn

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/safepool/safepool/internal/proc"
	"github.com/safepool/safepool/internal/wire"
)

// Config says how to start a worker.
type Config struct {
	Init wire.Init
	// Path and Args run the worker as an explicit command; an empty Path
	// re-executes the current binary, whose sandbox init hook makes it a
	// worker.
	Path         string
	Args         []string
	StartTimeout time.Duration // how long the handshake may take; 0 means 30 s
	// Cancel, when closed, ends a start-up under way: the process is
	// killed and Start returns ErrStartCanceled.
	Cancel <-chan struct{}
}

// ErrStart wraps every failure to bring a worker up.
var ErrStart = errors.New("worker: start failed")

// ErrKilledAtStart is wrapped, with ErrStart, when a SIGKILL from outside
// (an operator, the OOM killer; not Start's own timeout) ended the worker
// before its handshake: the worker did not fail, it was killed.
var ErrKilledAtStart = errors.New("worker: killed from outside during start-up")

// ErrStartTimeout is wrapped, with ErrStart, when the handshake did not
// come within Config.StartTimeout.
var ErrStartTimeout = errors.New("worker: no handshake within the start timeout")

// ErrStartCanceled is wrapped, with ErrStart, when Config.Cancel ended the
// start-up.
var ErrStartCanceled = errors.New("worker: start-up canceled")

// Conn is a running worker process. Send and Recv may be used from two
// different goroutines; neither is safe for concurrent use with itself.
type Conn struct {
	p     *proc.Process
	r     *wire.Reader
	w     *wire.Writer
	ready *wire.Ready
	frame []byte
	// results is the array Recv decodes results into, reused from one
	// message to the next.
	results []wire.Result

	deathOnce sync.Once
	death     *Death
	timedOut  atomic.Bool // Start's timeout killed the worker
	canceled  atomic.Bool // Config.Cancel killed the worker
}

// Death says how a worker ended and which task it was running.
type Death struct {
	Exit    proc.Exit
	Running uint64 // the task running when it died; 0 if it was idle
	Since   int64  // when that task started, Unix nanoseconds
	Stderr  string // tail of the worker process's own stderr
	Fatal   *wire.Fatal
}

func (d *Death) Error() string {
	msg := "worker " + d.Exit.String()
	if d.Fatal != nil {
		msg += ": " + d.Fatal.Message
	}
	return msg
}

// Start starts a worker process and waits for its handshake. A worker that
// fails to start is killed and reaped before Start returns.
func Start(cfg Config) (*Conn, error) {
	p, err := proc.Start(proc.Options{Path: cfg.Path, Args: cfg.Args})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}
	wk := &Conn{p: p, r: wire.NewReader(p.Reader()), w: wire.NewWriter(p.Writer())}
	timeout := cfg.StartTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	// A worker stuck before its handshake (a module whose start-up never
	// ends) is killed; the read below then fails.
	t := time.AfterFunc(timeout, func() { wk.timedOut.Store(true); p.Kill() })
	defer t.Stop()
	if cfg.Cancel != nil {
		started := make(chan struct{})
		defer close(started)
		go func() {
			select {
			case <-cfg.Cancel:
				wk.canceled.Store(true)
				p.Kill()
			case <-started:
			}
		}()
	}
	cfg.Init.Version = wire.Version
	if err := wk.w.Send(wire.TypeInit, wire.AppendInit(nil, &cfg.Init)); err != nil {
		return nil, wk.startFailed(err, timeout)
	}
	typ, pl, err := wk.r.Read()
	if err != nil {
		return nil, wk.startFailed(err, timeout)
	}
	switch typ {
	case wire.TypeReady:
		ready, err := wire.DecodeReady(pl)
		if err != nil {
			return nil, wk.startFailed(err, timeout)
		}
		if ready.Version != wire.Version {
			return nil, wk.startFailed(fmt.Errorf("worker speaks protocol %d, host %d", ready.Version, wire.Version), timeout)
		}
		wk.ready = ready
		return wk, nil
	case wire.TypeFatal:
		f, err := wire.DecodeFatal(pl)
		if err != nil {
			return nil, wk.startFailed(err, timeout)
		}
		wk.p.Kill()
		wk.p.Release()
		return nil, fmt.Errorf("%w: %w", ErrStart, f)
	default:
		return nil, wk.startFailed(fmt.Errorf("unexpected %s frame", typ), timeout)
	}
}

func (wk *Conn) startFailed(err error, timeout time.Duration) error {
	wk.p.Kill()
	wk.p.Release()
	e := wk.p.Exit()
	msg := fmt.Sprintf("%v; worker %s", err, e)
	if e.Signaled() && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE)) {
		msg = fmt.Sprintf("worker %s before its handshake", e)
		switch {
		case wk.canceled.Load():
			return fmt.Errorf("%w: %w", ErrStart, ErrStartCanceled)
		case wk.timedOut.Load():
			return fmt.Errorf("%w: %w: no handshake within %s; raise the start timeout if the machine is slow", ErrStart, ErrStartTimeout, timeout)
		case e.Signal == syscall.SIGKILL:
			return fmt.Errorf("%w: %w: %s", ErrStart, ErrKilledAtStart, msg)
		}
	}
	if s := wk.p.Stderr(); len(s) > 0 {
		msg += "; worker stderr: " + string(s)
	}
	return fmt.Errorf("%w: %s", ErrStart, msg)
}

// PID returns the worker's process ID.
func (wk *Conn) PID() int { return wk.p.PID() }

// Ready returns the worker's handshake.
func (wk *Conn) Ready() *wire.Ready { return wk.ready }

// Exited is closed when the worker process has ended.
func (wk *Conn) Exited() <-chan struct{} { return wk.p.Exited() }

// Exit says how the worker process ended; valid once Exited is closed.
func (wk *Conn) Exit() Exit { return wk.p.Exit() }

// Exit says how a worker process ended: its signal or exit code.
type Exit = proc.Exit

// SpinReads makes the next reads poll the pipe briefly before they park
// (see proc.SpinReader), for a caller that expects an answer at once.
func (wk *Conn) SpinReads(on bool) { wk.p.SpinReads(on) }

// ErrNoRoom is returned by TrySend when the batch does not fit in the
// worker's input pipe now.
var ErrNoRoom = errors.New("worker: the batch does not fit in the input pipe now")

// Send sends one batch, blocking until the worker has taken it. Use it only
// when the worker has nothing in flight: a worker reads its next batch only
// after it has sent every result of the one before, so a host blocked here
// while that worker blocks writing results to it would never move again.
// An error means the worker is gone; Recv will report how.
func (wk *Conn) Send(tasks []wire.Task) error { return wk.send(tasks, false) }

// TrySend sends one batch only if it fits in the input pipe's free buffer,
// so that it cannot block; otherwise it sends nothing and returns
// ErrNoRoom. It queues a batch behind one the worker is running.
func (wk *Conn) TrySend(tasks []wire.Task) error { return wk.send(tasks, true) }

func (wk *Conn) send(tasks []wire.Task, try bool) error {
	wk.frame = wire.AppendBatch(wk.frame[:0], tasks)
	if cap(wk.frame) > 4<<20 {
		defer func() { wk.frame = nil }()
	}
	if try && wire.FrameSize(len(wk.frame)) > wk.p.InputRoom() {
		return ErrNoRoom
	}
	return wk.w.Send(wire.TypeBatch, wk.frame)
}

// Event is one thing Recv learned. Exactly one field is set.
type Event struct {
	// Results are valid until the next Recv, which reuses their array
	// (their outputs and logs are not reused).
	Results []wire.Result
	Started uint64
	Death   *Death
	// HostCall is a guest's call of a host function. The worker waits
	// for the answer, which Reply sends.
	HostCall *wire.HostCall
}

// Recv waits for the next event. When the worker dies it returns a Death
// event; every call after that returns the same Death.
func (wk *Conn) Recv() Event {
	if wk.death != nil {
		return Event{Death: wk.death}
	}
	typ, p, err := wk.r.Read()
	if err != nil {
		// EOF: the process died or closed its end.
		return Event{Death: wk.die(nil)}
	}
	var bad error
	switch typ {
	case wire.TypeResults:
		rs, err := wire.DecodeResultsInto(wk.results, p)
		if err == nil {
			if cap(rs) <= 4096 { // a huge batch must not pin its array
				wk.results = rs
			}
			return Event{Results: rs}
		}
		bad = err
	case wire.TypeStarted:
		id, err := wire.DecodeStarted(p)
		if err == nil {
			return Event{Started: id}
		}
		bad = err
	case wire.TypeHostCall:
		c, err := wire.DecodeHostCall(p)
		if err == nil {
			return Event{HostCall: c}
		}
		bad = err
	case wire.TypeFatal:
		f, err := wire.DecodeFatal(p)
		if err == nil {
			return Event{Death: wk.die(f)}
		}
		bad = err
	default:
		bad = fmt.Errorf("unexpected %s frame", typ)
	}
	// A garbled stream means the worker cannot be trusted any more: it is
	// killed, and the death says why.
	return Event{Death: wk.die(&wire.Fatal{Code: wire.FatalProtocol, Message: "garbled frame from the worker: " + bad.Error()})}
}

func (wk *Conn) die(f *wire.Fatal) *Death {
	wk.deathOnce.Do(func() {
		// Read the slot before killing: the worker may still be alive if it
		// sent garbage or a fatal message.
		id, since := wk.p.Slot().Running()
		wk.p.Kill()
		d := &Death{Exit: wk.p.Exit(), Running: id, Since: since, Fatal: f}
		d.Stderr = string(wk.p.Stderr())
		wk.death = d
	})
	return wk.death
}

// Kill kills the worker now. Safe to call at any time, more than once.
// Reply answers the worker's host call. An error means the worker is
// gone; Recv reports its death.
func (wk *Conn) Reply(r *wire.HostReply) error {
	return wk.w.Send(wire.TypeHostReply, wire.AppendHostReply(nil, r))
}

func (wk *Conn) Kill() { wk.p.Kill() }

// Stop asks the worker to finish its queued batches and exit, by closing its
// input.
func (wk *Conn) Stop() { _ = wk.p.CloseInput() }

// Release waits for the process to end and frees its descriptors.
func (wk *Conn) Release() { wk.p.Release() }

// Running returns the task the worker is running now and when it started, or
// 0 when idle.
func (wk *Conn) Running() (uint64, int64) { return wk.p.Slot().Running() }
