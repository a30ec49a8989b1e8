package pool

import (
	"errors"
	"fmt"
	"time"
)

// ErrCallOption is wrapped by the error of a Map, MapAsync or Apply given a
// CallOption the pool cannot honour.
var ErrCallOption = errors.New("pool: bad call option")

// CallOption sets a limit for one Map, MapAsync or Apply, within the
// pool's own: WithTimeout, WithMemoryLimit.
type CallOption func(*callOptions)

type callOptions struct {
	timeout  time.Duration
	memLimit int64
}

// WithTimeout gives each task of the call a timeout of d instead of the
// pool's Timeout. It must be positive and at most the pool's Timeout; a
// pool without a Timeout cannot stop a task (its module is compiled
// without the checks that would), so it refuses this option.
func WithTimeout(d time.Duration) CallOption { return func(o *callOptions) { o.timeout = d } }

// WithMemoryLimit gives each task of the call a linear-memory cap of n
// bytes instead of the pool's MemoryLimit: at least one 64 KiB page, at
// most the pool's MemoryLimit. Under a Retry policy a task that hits it is
// retried with a larger cap, up to Retry.MaxMemory, as usual.
func WithMemoryLimit(n int64) CallOption { return func(o *callOptions) { o.memLimit = n } }

// callOptions checks opts against the pool's limits.
func (p *Pool) callOptions(opts []CallOption) (callOptions, error) {
	var o callOptions
	if len(opts) == 0 {
		return o, nil
	}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	switch {
	case o.timeout < 0:
		return o, fmt.Errorf("%w: WithTimeout(%s): use a positive duration", ErrCallOption, o.timeout)
	case o.timeout > 0 && p.cfg.Timeout == 0:
		return o, fmt.Errorf("%w: WithTimeout(%s): the pool has no Timeout, so its workers cannot stop a task; set Config.Timeout (the longest any call may ask for)", ErrCallOption, o.timeout)
	case o.timeout > p.cfg.Timeout:
		return o, fmt.Errorf("%w: WithTimeout(%s) is above the pool's Timeout of %s; ask for at most that", ErrCallOption, o.timeout, p.cfg.Timeout)
	case o.timeout > 0 && p.cfg.Cluster != "":
		return o, fmt.Errorf("%w: WithTimeout: a cluster pool runs every task under its Timeout; per-call timeouts work on local pools", ErrCallOption)
	case o.memLimit < 0 || (o.memLimit > 0 && o.memLimit < 64<<10):
		return o, fmt.Errorf("%w: WithMemoryLimit(%d): use at least one 64 KiB page", ErrCallOption, o.memLimit)
	case o.memLimit > p.cfg.MemoryLimit:
		return o, fmt.Errorf("%w: WithMemoryLimit(%d) is above the pool's MemoryLimit of %d; ask for at most that", ErrCallOption, o.memLimit, p.cfg.MemoryLimit)
	}
	return o, nil
}

// set gives r the call's limits.
func (o callOptions) set(r *run) {
	r.timeout = o.timeout
	if o.memLimit > 0 {
		r.memLimit = o.memLimit
	}
}
