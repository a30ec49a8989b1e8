package pool

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/safepool/safepool/internal/wire"
)

// HostFunc is a function a guest may call (Config.HostFuncs), with the
// bytes it passes; what it returns goes back to the guest. It runs in the
// pool's process under ctx: the context of the map or Apply whose task
// called it, with the task's deadline when the pool has a Timeout. Its
// time counts against the task's timeout, and once the deadline passes
// the guest gets an error and the task is stopped, whether or not the
// function has returned. An error it returns, or a panic, reaches the
// guest as an error (guest.CallHost), never as a trap, and the worker
// goes on. It may be called from several workers at once.
type HostFunc func(ctx context.Context, in []byte) ([]byte, error)

// hostFuncNames are the names the worker may call, sorted.
func hostFuncNames(m map[string]HostFunc) []string {
	if len(m) == 0 {
		return nil
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// checkHostFuncs checks Config.HostFuncs.
func (c *Config) checkHostFuncs() error {
	if len(c.HostFuncs) > 0 && c.Cluster != "" {
		return fmt.Errorf("HostFuncs cannot run on a cluster's agents; use a local pool (Cluster \"\") for a module that calls host functions")
	}
	for n, f := range c.HostFuncs {
		if n == "" || f == nil {
			return fmt.Errorf("HostFuncs has an empty name or a nil function; give each function a name")
		}
	}
	return nil
}

// hostCall runs a guest's host call and answers the worker. It runs on the
// driver's goroutine, while the worker waits for the answer and runs
// nothing else.
func (d *driver) hostCall(c *wire.HostCall) {
	ctx := context.Background()
	d.mu.Lock()
	if f, i := d.find(c.Task); f != nil && f.jobs[i] != nil && f.jobs[i].run.ctx != nil {
		ctx = f.jobs[i].run.ctx
	}
	d.mu.Unlock()
	out, err := d.l.callHost(ctx, c)
	rep := &wire.HostReply{Output: out}
	if err != nil {
		rep = &wire.HostReply{Failed: true, Error: err.Error()}
	}
	_ = d.wk.Reply(rep) // a worker gone shows in the next receive
}

// callHost runs the host function c names under ctx and the task's
// deadline. The function runs on a goroutine of its own, so that the
// deadline, or the end of the pool, ends the wait even when the function
// does not watch its context; such a function goes on running, unwatched,
// until it returns.
func (l *local) callHost(ctx context.Context, c *wire.HostCall) ([]byte, error) {
	fn, ok := l.cfg.HostFuncs[c.Name]
	if !ok {
		return nil, fmt.Errorf("no host function %q", c.Name)
	}
	var cancel context.CancelFunc
	if c.Deadline != 0 {
		ctx, cancel = context.WithDeadline(ctx, time.Unix(0, c.Deadline))
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	type answer struct {
		out []byte
		err error
	}
	done := make(chan answer, 1)
	go func() {
		var a answer
		defer func() {
			if r := recover(); r != nil {
				a = answer{err: fmt.Errorf("panic: %v", r)}
			}
			done <- a
		}()
		a.out, a.err = fn(ctx, c.Input)
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		a.err = context.Cause(ctx)
	case <-l.quit:
		a.err = ErrClosed
	}
	if a.err != nil {
		return nil, a.err
	}
	if limit := min(l.cfg.OutputLimit, 1<<30); int64(len(a.out)) > limit {
		return nil, fmt.Errorf("output of %d bytes is over the cap of %d bytes (OutputLimit)", len(a.out), limit)
	}
	return a.out, nil
}
