package harness

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/safepool/safepool/pool"
)

// killProbe kills a worker on cue and timestamps what the pool does about
// it. Its onEvent runs on the pool's goroutines.
type killProbe struct {
	mu        sync.Mutex
	armed     bool // kill the worker that starts the next first attempt
	killedAt  time.Time
	retryAt   time.Time // the killed task started again
	fullAt    time.Time // a replacement worker finished its handshake
	live      map[int]bool
	retried   chan struct{}
	recovered chan struct{}
}

func newKillProbe() *killProbe {
	return &killProbe{live: map[int]bool{}}
}

// reset clears the timestamps for the next kill.
func (k *killProbe) reset(armed bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.armed = armed
	k.killedAt, k.retryAt, k.fullAt = time.Time{}, time.Time{}, time.Time{}
	k.retried = make(chan struct{})
	k.recovered = make(chan struct{})
}

func (k *killProbe) onEvent(e pool.Event) {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch e.Kind {
	case pool.EventWorkerStart, pool.EventSparePromoted:
		k.live[e.WorkerPID] = true
		if !k.killedAt.IsZero() && k.fullAt.IsZero() {
			k.fullAt = e.Time
			close(k.recovered)
		}
	case pool.EventWorkerExit:
		delete(k.live, e.WorkerPID)
	case pool.EventTaskStart:
		switch {
		case e.Attempt == 1 && k.armed:
			k.armed = false
			k.killedAt = time.Now()
			_ = syscall.Kill(e.WorkerPID, syscall.SIGKILL)
		case e.Attempt == 2 && !k.killedAt.IsZero() && k.retryAt.IsZero():
			k.retryAt = e.Time
			close(k.retried)
		}
	}
}

// killIdle kills one live worker now. Only for pools without spares.
func (k *killProbe) killIdle() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for pid := range k.live {
		k.killedAt = time.Now()
		return syscall.Kill(pid, syscall.SIGKILL)
	}
	return errors.New("no live worker to kill")
}

// waitRecovered waits for the pool to be back at full strength after
// kill number i.
func (k *killProbe) waitRecovered(i int) error {
	k.mu.Lock()
	recovered := k.recovered
	k.mu.Unlock()
	select {
	case <-recovered:
		return nil
	case <-time.After(recoveryWait):
		return fmt.Errorf("kill %d: no replacement worker after %s", i, recoveryWait)
	}
}

func (k *killProbe) liveCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.live)
}

func (k *killProbe) since() (retry, full time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.retryAt.Sub(k.killedAt), k.fullAt.Sub(k.killedAt)
}

// recovery is scenario 3: Kills times, SIGKILL the worker running a slow
// task and time the retry's start and the replacement worker's handshake.
// It runs with a near-zero Retry backoff, which measures the pool, with
// the default backoff, which is what a user gets, and with a spare worker
// (Config.Spares) and the near-zero backoff. A last measurement kills idle
// workers of the WAT guest, whose workers start fastest.
func (b *bench) recovery(ctx context.Context) error {
	for _, c := range []struct {
		backoff time.Duration
		spares  int
	}{{time.Microsecond, 0}, {0, 0}, {time.Microsecond, 1}} {
		rec, err := b.killRunning(ctx, c.backoff, c.spares)
		if err != nil {
			return err
		}
		b.res.Recovery = append(b.res.Recovery, rec)
	}
	rec, err := b.killIdle(ctx, WATGuest)
	if err != nil {
		return err
	}
	b.res.Recovery = append(b.res.Recovery, rec)
	return nil
}

const recoveryWait = 10 * time.Second

// maxLateKills is how many kills per measurement may land after their
// task has already ended (and be measured again) before it fails.
const maxLateKills = 5

// killRunning kills the worker running slow_square (30 ms in the Go guest)
// as soon as the task starts, under the Retry policy.
func (b *bench) killRunning(ctx context.Context, backoff time.Duration, spares int) (Recovery, error) {
	probe := newKillProbe()
	p, err := b.newPool(GoGuest, func(c *pool.Config) {
		c.KillPolicy = pool.Retry
		c.Retry.Backoff = backoff
		c.OnEvent = probe.onEvent
		c.Spares = spares
	})
	if err != nil {
		return Recovery{}, err
	}
	defer closePool(p)
	// The spares start after New returns.
	if err := waitFull(probe, b.opts.Workers+spares); err != nil {
		return Recovery{}, err
	}
	rec := Recovery{Guest: GoGuest, Mode: "worker running slow_square (30 ms)", Backoff: "default (10 ms, jittered to 5–10 ms)", Spares: spares, Kills: b.opts.Kills}
	if backoff > 0 {
		rec.Backoff = backoff.String()
	}
	late := 0
	for i := 0; i < b.opts.Kills; i++ {
		b.waitQuiet()
		probe.reset(true)
		cctx, cancel := context.WithTimeout(ctx, recoveryWait)
		r, err := p.Apply(cctx, "slow_square", []byte("7"))
		cancel()
		if err != nil {
			return rec, fmt.Errorf("kill %d: %w", i, err)
		}
		if r.Status == pool.StatusOK && string(r.Output) == "49" && r.Attempts == 1 && late < maxLateKills {
			// The SIGKILL is sent when the task starts, from the pool's
			// event; on a loaded machine it can land after the worker
			// has already answered (the task's 30 ms passed first). The
			// result is right and the kill hit an idle worker: wait for
			// its replacement and measure this kill again.
			late++
			if err := probe.waitRecovered(i); err != nil {
				return rec, err
			}
			if err := waitFull(probe, b.opts.Workers+spares); err != nil {
				return rec, err
			}
			i--
			continue
		}
		if r.Status != pool.StatusOK || string(r.Output) != "49" || r.Attempts != 2 {
			return rec, fmt.Errorf("kill %d: the task ended %s after %d attempts (%s); want ok after 2", i, r.Status, r.Attempts, r.Error)
		}
		if err := probe.waitRecovered(i); err != nil {
			return rec, err
		}
		retry, full := probe.since()
		rec.Retry = append(rec.Retry, retry)
		rec.Full = append(rec.Full, full)
		if err := waitFull(probe, b.opts.Workers+spares); err != nil {
			return rec, err
		}
	}
	return rec, nil
}

// isolatedKill is how long killIdle waits before each kill: longer than
// the pool's calm period.
const isolatedKill = 1100 * time.Millisecond

// killIdle kills an idle worker and times its replacement.
func (b *bench) killIdle(ctx context.Context, guest string) (Recovery, error) {
	probe := newKillProbe()
	p, err := b.newPool(guest, func(c *pool.Config) { c.OnEvent = probe.onEvent })
	if err != nil {
		return Recovery{}, err
	}
	defer closePool(p)
	if _, err := p.Apply(ctx, "square", []byte("7")); err != nil {
		return Recovery{}, err
	}
	rec := Recovery{Guest: guest, Mode: "idle worker", Backoff: "n/a", Kills: b.opts.Kills}
	for i := range b.opts.Kills {
		if err := waitFull(probe, b.opts.Workers); err != nil {
			return rec, err
		}
		b.waitQuiet()
		// Space the kills more than the pool's calm period (1 s) apart, so
		// that each is one kill and not a storm: workers killed one after
		// another before they have stayed up that long are failed
		// start-ups, whose respawns back off by design.
		time.Sleep(isolatedKill)
		probe.reset(false)
		if err := probe.killIdle(); err != nil {
			return rec, err
		}
		if err := probe.waitRecovered(i); err != nil {
			return rec, err
		}
		_, full := probe.since()
		rec.Full = append(rec.Full, full)
	}
	return rec, nil
}

// waitFull waits until the pool has its workers again: the exit of a
// killed worker is reported a moment after its replacement may have
// started.
func waitFull(probe *killProbe, workers int) error {
	deadline := time.Now().Add(recoveryWait)
	for probe.liveCount() != workers {
		if time.Now().After(deadline) {
			return fmt.Errorf("the pool has %d live workers, want %d", probe.liveCount(), workers)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}
