package pool

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/safepool/safepool/internal/hostconn"
	"github.com/safepool/safepool/internal/wire"
)

// StartError says that the pool could not keep workers up: they failed to
// start, or died before running a task, too many times in a row. The maps
// that were waiting for workers end with it, and so does every new map
// until the pool recovers. errors.Is(err, ErrCrashLoop) matches it.
//
// A StartError whose Usable is true comes from outside: workers killed by
// a signal (the OOM killer, an operator) as they started. The pool keeps
// starting workers, about once a second, and takes maps again as soon as
// one stays up; [Pool.Err] says whether it has. One whose Usable is false
// comes from the module or the machine (a worker that exits or fails as
// it starts): the pool stops starting workers and only Close and Terminate
// are left.
type StartError struct {
	// What is what the workers did, such as "killed by SIGKILL as they
	// started" or "exited with code 3 as they started".
	What string
	// Count is how many start-ups in a row failed.
	Count int
	// Over is the time from the first failure of the run to the last.
	Over time.Duration
	// Usable reports whether the pool goes on trying (see above).
	Usable bool
	// Last is the last start-up's own error.
	Last error
}

func (e *StartError) Error() string {
	msg := fmt.Sprintf("pool: workers %s: %d times in %s", e.What, e.Count, e.Over.Round(10*time.Millisecond))
	if e.Usable {
		return msg + "; the pool keeps starting workers and takes maps again once one stays up"
	}
	if e.Last != nil {
		msg += "; last: " + e.Last.Error()
	}
	return msg + "; the pool has stopped starting workers: check the module ('safepool inspect') and the machine's free memory"
}

// Is makes errors.Is(err, ErrCrashLoop) true.
func (e *StartError) Is(target error) bool { return target == ErrCrashLoop }

// Unwrap returns the last start-up's error.
func (e *StartError) Unwrap() error { return e.Last }

// The breaker's bounds.
const (
	// faultLimit is how many start-ups in a row may fail by the module's
	// or the machine's own doing before the pool gives up for good.
	faultLimit = 5
	// calm is how long a worker must stay up for its start to count as a
	// success when it has delivered nothing yet.
	calm = time.Second
	// maxRespawnDelay caps the backoff between failed start-ups.
	maxRespawnDelay = time.Second
)

// health is the pool's record of whether workers can be kept up. A
// failure is a start-up that did not reach its handshake, or a worker
// that died with no task to blame before it delivered a result or stayed
// up for calm. A success (a delivery, or a worker that stayed up) ends the
// run of failures and closes a breaker that outside kills opened.
type health struct {
	giveUp time.Duration // Config.StartGiveUp

	mu      sync.Mutex
	streak  int       // failures in a row
	faults  int       // of which the module's or machine's doing, in a row
	first   time.Time // when the streak began
	what    string    // the last failure, as StartError.What
	last    error
	tripped *StartError
	// trips is closed and replaced each time the breaker opens, so that a
	// waiter (New) learns of it.
	trips chan struct{}
}

func newHealth(giveUp time.Duration) *health {
	return &health{giveUp: giveUp, trips: make(chan struct{})}
}

// startFailure classifies a start-up's error: what the workers did, and
// whether it was a kill from outside (not the module's fault).
func startFailure(err error) (what string, outside bool) {
	var f *wire.Fatal
	switch {
	case errors.Is(err, hostconn.ErrKilledAtStart):
		return "killed by SIGKILL as they started", true
	case errors.As(err, &f):
		return "failed as they started", false
	}
	var d *hostconn.Death
	if errors.As(err, &d) {
		return d.Exit.String() + " as they started", false
	}
	return "failed to start", false
}

// fail records a failure and reports the breaker's error if this failure
// opened it.
func (h *health) fail(what string, outside bool, err error) *StartError {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	if h.streak == 0 {
		h.first = now
	}
	h.streak++
	if outside {
		h.faults = 0
	} else {
		h.faults++
	}
	h.what, h.last = what, err
	over := now.Sub(h.first)
	if t := h.tripped; t != nil {
		t.Count, t.Over = h.streak, over
		if t.Usable && h.faults >= faultLimit {
			// Kills opened it; the module now fails by itself too.
			t.Usable, t.What, t.Last = false, what, err
			return h.open(t)
		}
		return nil
	}
	if h.faults < faultLimit && (over < h.giveUp || h.streak < 3) {
		return nil
	}
	return h.open(&StartError{What: what, Count: h.streak, Over: over, Usable: h.faults < faultLimit, Last: err})
}

// open opens the breaker with e and wakes whoever waits for that. Called
// with mu held.
func (h *health) open(e *StartError) *StartError {
	h.tripped = e
	close(h.trips)
	h.trips = make(chan struct{})
	c := *e
	return &c
}

// succeed ends the run of failures and closes a breaker that can close. It
// reports whether it closed one.
func (h *health) succeed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.streak, h.faults = 0, 0
	if h.tripped != nil && h.tripped.Usable {
		h.tripped = nil
		return true
	}
	return false
}

// failing reports whether a run of failures is under way or the breaker
// is open.
func (h *health) failing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.streak > 0 || h.tripped != nil
}

// err returns the open breaker's error, or nil.
func (h *health) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tripped == nil {
		return nil
	}
	e := *h.tripped
	return &e
}

// broken reports whether the breaker is open for good.
func (h *health) broken() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tripped != nil && !h.tripped.Usable
}

// tripC returns a channel that is closed when the breaker next opens.
func (h *health) tripC() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.trips
}

// delay is the wait before the next start-up: none after a success, then
// 10 ms doubling per failure up to maxRespawnDelay, with jitter (half to
// all of it), so that a kill storm cannot keep a core busy starting
// workers and workers killed together do not all come back together.
func (h *health) delay() time.Duration {
	h.mu.Lock()
	n := h.streak
	h.mu.Unlock()
	if n == 0 {
		return 0
	}
	d := min(10*time.Millisecond<<min(n-1, 10), maxRespawnDelay)
	return d/2 + rand.N(d/2+1)
}
