package pool

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/internal/hostconn"
	"github.com/safepool/safepool/internal/wire"
	"github.com/safepool/safepool/module"
)

// local is the dispatcher that runs attempts in worker processes on this
// machine: one driver per worker slot, spare workers, the start-up breaker
// and the hang watchdog. It takes jobs from the pool's queue and hands
// every attempt's outcome to the pool through sink; the breaker's error
// goes to onTrip. It never calls back into the pool otherwise.
type local struct {
	cfg    Config
	init   wire.Init
	q      *queue
	sink   func(*outcome)
	emit   func(Event)
	onTrip func(error)
	// delivered, when set, is called after each batch of outcomes a
	// worker's answer gave the sink: a cluster agent sends them on then,
	// in one message.
	delivered func()

	drivers []*driver
	// Spare workers (Config.Spares) and the keeper's wake-up; both nil
	// without spares.
	spares     chan *hostconn.Conn
	spareTaken chan struct{}
	wg         sync.WaitGroup
	quit       chan struct{} // closed when workers must stop
	closeOnce  sync.Once
	nextID     atomic.Uint64
	health     *health

	// ready is closed when the first worker has finished its handshake,
	// which sets kind and handlers; readyOnce guards both.
	ready     chan struct{}
	readyOnce sync.Once
	kind      module.Kind
	handlers  []string
	// startFailed is closed, with startErr set, when a worker fails by the
	// module's own doing before any worker was ready.
	startFailed   chan struct{}
	startFailOnce sync.Once
	startErr      error
	// readyCount counts handshakes; started wakes waitReady on each
	// start-up that succeeds or fails; startTrouble is set by the first
	// that fails.
	readyCount   atomic.Int64
	started      chan struct{}
	startTrouble atomic.Bool
	// cacheMu serialises the recovery of a damaged cache entry, which is
	// tried once (cacheRetried); cacheGen counts recoveries.
	cacheMu      sync.Mutex
	cacheRetried bool
	cacheGen     int
}

// newLocal starts the drivers (each starts its own worker), the hang
// watchdog and the spare keeper.
func newLocal(cfg Config, init wire.Init, q *queue, sink func(*outcome), emit func(Event), onTrip func(error)) *local {
	l := &local{
		cfg: cfg, init: init, q: q, sink: sink, emit: emit, onTrip: onTrip,
		quit: make(chan struct{}), health: newHealth(cfg.StartGiveUp),
		ready: make(chan struct{}), startFailed: make(chan struct{}), started: make(chan struct{}, 1),
	}
	if cfg.Spares > 0 { // before the drivers, which take spares
		l.spares = make(chan *hostconn.Conn, cfg.Spares)
		l.spareTaken = make(chan struct{}, 1)
	}
	for range cfg.Workers {
		d := &driver{l: l, wake: make(chan struct{}, 1)}
		l.drivers = append(l.drivers, d)
		l.wg.Add(1)
		go d.loop()
	}
	if cfg.Timeout > 0 {
		l.wg.Add(1)
		go l.watchHangs()
	}
	if cfg.Spares > 0 {
		l.wg.Add(1)
		go l.keepSpares()
	}
	return l
}

// waitReady waits until every worker is ready or, once a start-up has
// failed, until one is: the module is then known to run. It returns what
// the module is, or why it cannot run.
func (l *local) waitReady(ctx context.Context) (module.Kind, []string, error) {
	for {
		if n := l.readyCount.Load(); n >= int64(l.cfg.Workers) || (n > 0 && l.startTrouble.Load()) {
			return l.kind, l.handlers, nil
		}
		// The breaker may have opened after the wake-up that brought us
		// here and before tripC below is taken: look first.
		if err := l.health.err(); err != nil {
			return 0, nil, err
		}
		select {
		case <-l.started:
		case <-l.startFailed:
			return 0, nil, &moduleStartError{l.startErr}
		case <-l.health.tripC():
			return 0, nil, l.health.err()
		case <-ctx.Done():
			return 0, nil, context.Cause(ctx)
		}
	}
}

// moduleStartError is a start-up that failed by the module's own doing
// before any worker was ready: the module cannot run.
type moduleStartError struct{ err error }

func (e *moduleStartError) Error() string { return e.err.Error() }
func (e *moduleStartError) Unwrap() error { return e.err }

// err returns the open breaker's error, or nil when maps can run.
func (l *local) err() error { return l.health.err() }

// stopping reports whether workers must stop: the dispatcher is closing,
// or the breaker opened for good.
func (l *local) stopping() bool {
	select {
	case <-l.quit:
		return true
	default:
		return l.health.broken()
	}
}

// stopRun stops the workers running tasks of an aborted run. Its queued
// tasks are dropped when popped.
func (l *local) stopRun(r *run) {
	for _, d := range l.drivers {
		d.killIf(r)
	}
}

// close stops the drivers: idle workers are retired gracefully, and with
// kill every worker is killed first. It waits for every goroutine.
func (l *local) close(kill bool) {
	l.closeOnce.Do(func() { close(l.quit) })
	if kill {
		for _, d := range l.drivers {
			d.kill()
		}
	}
	l.wg.Wait()
}

// watchHangs kills workers whose task ran past Timeout + hangGrace.
func (l *local) watchHangs() {
	defer l.wg.Done()
	t := time.NewTicker(max(l.cfg.Timeout/4, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-l.quit:
			return
		case now := <-t.C:
			for _, d := range l.drivers {
				d.checkHang(now)
			}
		}
	}
}

// spawn starts one worker.
func (l *local) spawn() (*hostconn.Conn, error) {
	cfg := hostconn.Config{Init: l.init, StartTimeout: l.cfg.StartTimeout, Cancel: l.quit}
	if len(l.cfg.WorkerCommand) > 0 {
		cfg.Path, cfg.Args = l.cfg.WorkerCommand[0], l.cfg.WorkerCommand[1:]
		if cfg.Args == nil {
			cfg.Args = []string{}
		}
	}
	wk, err := hostconn.Start(cfg)
	if err != nil {
		return nil, err
	}
	l.emit(Event{Kind: EventWorkerStart, WorkerPID: wk.PID()})
	return wk, nil
}

// startWorker starts a worker after the backoff the run of failures calls
// for. A failure is recorded, and may recover a damaged cache entry, fail
// New (the module cannot start) or open the breaker.
func (l *local) startWorker() (*hostconn.Conn, error) {
	if d := l.health.delay(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-l.quit:
			t.Stop()
			return nil, ErrClosed
		}
	}
	gen := l.cacheGeneration()
	wk, err := l.spawn()
	if err == nil {
		l.workerReady(wk)
		return wk, nil
	}
	if errors.Is(err, hostconn.ErrStartCanceled) {
		return nil, ErrClosed
	}
	l.startTrouble.Store(true)
	l.signalStart()
	what, outside := startFailure(err)
	l.emit(Event{Kind: EventWorkerExit, Reason: "worker " + what + ": " + firstLine(err.Error()), Cause: "start_failed", Signal: startSignal(outside)})
	if !outside && l.recoverCache(err, gen) {
		return nil, err // not counted: the next start-up uses a fresh entry
	}
	if !outside && !l.isReady() {
		// The module cannot start: New reports it at once.
		l.startFailOnce.Do(func() { l.startErr = err; close(l.startFailed) })
		return nil, err
	}
	if trip := l.health.fail(what, outside, err); trip != nil {
		l.onTrip(trip)
	}
	return nil, err
}

// workerReady counts a handshake. The first says what the module is and
// which handlers it has.
func (l *local) workerReady(wk *hostconn.Conn) {
	defer l.signalStart()
	defer l.readyCount.Add(1)
	l.readyOnce.Do(func() {
		l.kind = module.Kind(wk.Ready().Kind)
		if l.kind == module.KindSDK {
			l.handlers = append([]string{}, wk.Ready().Handlers...)
		}
		close(l.ready)
	})
}

// signalStart wakes waitReady, which waits for start-ups to succeed or fail.
func (l *local) signalStart() {
	select {
	case l.started <- struct{}{}:
	default:
	}
}
func (l *local) isReady() bool {
	select {
	case <-l.ready:
		return true
	default:
		return false
	}
}

// cacheGeneration counts the recoveries of the cache entry so far.
func (l *local) cacheGeneration() int {
	l.cacheMu.Lock()
	defer l.cacheMu.Unlock()
	return l.cacheGen
}

// recoverCache forgets the module's cache entry and compiles it again, once
// per pool, when a start-up failed in a way a damaged entry can cause (see
// mayBeCache). It reports whether the failed start-up, begun at cache
// generation gen, should simply be tried again: the entry was recovered
// now, or since that start-up began.
//
// Only start-ups before the first handshake try it: once a worker has
// loaded the entry it is sound, and a later crash is the module's or the
// machine's.
func (l *local) recoverCache(err error, gen int) bool {
	if l.init.CacheDir == "" || !mayBeCache(err) || l.isReady() {
		return false
	}
	l.cacheMu.Lock()
	defer l.cacheMu.Unlock()
	if l.cacheGen > gen {
		return true
	}
	if l.cacheRetried {
		return false
	}
	l.cacheRetried = true
	wasm, rerr := os.ReadFile(l.init.ModulePath)
	if rerr != nil {
		return false
	}
	_ = engine.Forget(l.cfg.Engine, wasm, l.init.CacheDir, compileOptions(l.cfg))
	if perr := prepareModule(context.Background(), l.cfg, wasm, l.init.CacheDir); perr != nil {
		if !l.isReady() {
			l.startFailOnce.Do(func() { l.startErr = perr; close(l.startFailed) })
		}
		return false
	}
	l.cacheGen++
	return true
}

// unprovenDeath records the death, with no task to blame, of a worker that
// had not yet delivered a result: a start-up that failed, unless the worker
// stayed up for calm. A signal is taken as a kill from outside (the OOM
// killer, an operator); an exit or a fatal message as the module's doing.
func (l *local) unprovenDeath(d *hostconn.Death, up time.Duration) {
	if up >= calm {
		l.health.succeed()
		return
	}
	outside := d.Exit.Signaled() && d.Fatal == nil
	if trip := l.health.fail(d.Exit.String()+" before running a task", outside, d); trip != nil {
		l.onTrip(trip)
	}
}
