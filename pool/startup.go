package pool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/internal/proc"
	"github.com/safepool/safepool/internal/wire"
	"github.com/safepool/safepool/internal/worker"
	"github.com/safepool/safepool/module"
	_ "github.com/safepool/safepool/sandbox" // re-executed as a worker, this binary becomes one before main runs
)

// New validates cfg and the module, starts the workers and returns when
// all of them have finished their handshake. ctx bounds the start-up only;
// the pool does not keep it.
//
// A worker killed from outside while it starts (the OOM killer, an
// operator) is replaced like any other, after a backoff; it never makes New
// report a bad module. Once a start-up has failed that way, New returns as
// soon as one worker is ready, since the module is then known to run, and
// the rest keep starting in the background.
//
// # Errors
//
//   - A bad config wraps ErrConfig, and says what to change.
//   - A module that is not wasm, imports something the sandbox does not
//     provide, lacks the exports a task module needs, or cannot start gives
//     the module's error (module.ErrNotWasm and friends), which names the
//     problem. New fails at once: never later, at the first task.
//   - Workers that keep being killed as they start, for StartGiveUp, give a
//     *StartError (errors.Is ErrCrashLoop).
//   - When ctx is done first, New returns its error.
func New(ctx context.Context, cfg Config) (*Pool, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkWorkers(cfg); err != nil {
		return nil, err
	}
	p := &Pool{
		cfg: cfg, q: newQueue(), quit: make(chan struct{}), runs: map[*run]struct{}{},
		health: newHealth(cfg.StartGiveUp), ready: make(chan struct{}), startFailed: make(chan struct{}),
		started: make(chan struct{}, 1),
	}
	p.runsDone = sync.NewCond(&p.mu)
	wasm, err := p.loadModule()
	if err != nil {
		return nil, err
	}
	cache := p.cacheDir()
	// Check the module and compile it once, here, so that the workers load
	// machine code from the cache instead of each compiling it. A module
	// this machine has prepared before needs neither: the workers start at
	// once, and their handshake says what the module is.
	if !engine.Prepared(cfg.Engine, wasm, cache) {
		if err := p.prepare(ctx, wasm, cache); err != nil {
			p.cleanup()
			return nil, err
		}
	}
	p.init = wire.Init{
		ModulePath:    p.modPath,
		CacheDir:      cache,
		Engine:        cfg.Engine,
		MemoryLimit:   uint64(cfg.MemoryLimit),
		Timeout:       cfg.Timeout,
		OutputLimit:   uint64(cfg.OutputLimit),
		LogLimit:      uint64(cfg.LogLimit),
		FreshInstance: cfg.FreshInstance,
		Events:        cfg.OnEvent != nil,
		ProcessLimit:  processLimit(cfg),
		StartTimeout:  cfg.StartTimeout,
	}
	p.startDrivers()
	for {
		if n := p.readyCount.Load(); n >= int64(cfg.Workers) || (n > 0 && p.startTrouble.Load()) {
			return p, nil
		}
		select {
		case <-p.started:
			continue
		case <-p.startFailed:
			err = fmt.Errorf("pool: module %s: %w", p.moduleName(), p.startErr)
		case <-p.health.tripC():
			err = p.health.err()
		case <-ctx.Done():
			err = fmt.Errorf("pool: start-up: %w", context.Cause(ctx))
		}
		p.Terminate()
		return nil, err
	}
}

// loadModule reads the module and gives the workers a path to it: the
// module's own, or a copy of ModuleBytes in a temporary directory.
func (p *Pool) loadModule() ([]byte, error) {
	wasm := p.cfg.ModuleBytes
	if wasm == nil {
		var err error
		if wasm, err = os.ReadFile(p.cfg.Module); err != nil {
			return nil, fmt.Errorf("pool: read module: %w", err)
		}
		if p.modPath, err = filepath.Abs(p.cfg.Module); err != nil {
			return nil, fmt.Errorf("pool: module path: %w", err)
		}
		return wasm, nil
	}
	var err error
	if p.tmpDir, err = os.MkdirTemp("", "safepool-module-"); err != nil {
		return nil, fmt.Errorf("pool: write module for the workers: %w", err)
	}
	p.modPath = filepath.Join(p.tmpDir, "module.wasm")
	if err := os.WriteFile(p.modPath, wasm, 0o600); err != nil {
		p.cleanup()
		return nil, fmt.Errorf("pool: write module for the workers: %w", err)
	}
	return wasm, nil
}

// cacheDir returns the compilation cache to use, or "" to run without one
// when it cannot be written, which the pool says once (see Warnings): every
// worker then compiles the module itself.
func (p *Pool) cacheDir() string {
	dir := p.cfg.CacheDir
	if dir == "" {
		dir = engine.DefaultCacheDir()
	}
	err := os.MkdirAll(dir, 0o755)
	if err == nil {
		var f *os.File
		if f, err = os.CreateTemp(dir, ".probe-*"); err == nil {
			f.Close()
			os.Remove(f.Name())
		}
	}
	if err != nil {
		p.warn(fmt.Sprintf("pool: the compilation cache %s cannot be written (%v): every worker compiles the module itself, which makes each start-up slower; set CacheDir (--cache-dir) to a writable directory", dir, err))
		return ""
	}
	return dir
}

// prepare checks the module and compiles it into the cache.
func (p *Pool) prepare(ctx context.Context, wasm []byte, cache string) error {
	if _, err := engine.Prepare(ctx, p.cfg.Engine, wasm, cache); err != nil {
		return fmt.Errorf("pool: module %s: %w", p.moduleName(), err)
	}
	return nil
}

// startDrivers starts one driver per worker slot (each starts its own
// worker), the hang watchdog and the spare keeper.
func (p *Pool) startDrivers() {
	if p.cfg.Spares > 0 { // before the drivers, which take spares
		p.spares = make(chan *worker.Worker, p.cfg.Spares)
		p.spareTaken = make(chan struct{}, 1)
	}
	for range p.cfg.Workers {
		d := &driver{p: p, wake: make(chan struct{}, 1)}
		p.drivers = append(p.drivers, d)
		p.wg.Add(1)
		go d.loop()
	}
	if p.cfg.Timeout > 0 {
		p.wg.Add(1)
		go p.watchHangs()
	}
	if p.cfg.Spares > 0 {
		p.wg.Add(1)
		go p.keepSpares()
	}
}

func (p *Pool) moduleName() string {
	if p.cfg.Module != "" {
		return p.cfg.Module
	}
	return "(bytes)"
}

// processLimit sizes the worker's address-space backstop: the largest
// linear memory a task may get, plus room for the Go runtime and the
// compiled code.
func processLimit(cfg Config) uint64 {
	if raceEnabled {
		return 0 // the race detector reserves terabytes of shadow memory
	}
	return uint64(max(cfg.MemoryLimit, cfg.Retry.MaxMemory)) + 3<<30
}

// workerOverhead is what a worker costs beyond its task's linear memory: an
// idle worker with a Go guest holds about 38 MiB.
const workerOverhead = 40 << 20

// checkWorkers refuses more workers than the machine's available memory can
// hold at the memory cap plus a worker's overhead, unless Overcommit is
// set: such a pool would be killed by the OOM killer as it ran.
func checkWorkers(c Config) error {
	if c.Overcommit {
		return nil
	}
	avail, err := memAvailable()
	if err != nil {
		return nil // not Linux, or no /proc: nothing to check against
	}
	n := int64(c.Workers + c.Spares)
	each := c.MemoryLimit + workerOverhead
	if fit := avail / each; n > fit {
		return fmt.Errorf("%w: Workers+Spares is %d, but the machine's available memory (%s) holds about %d workers at MemoryLimit %s plus %s each; lower Workers or MemoryLimit, or set Overcommit (--overcommit) to start them anyway",
			ErrConfig, n, sizeString(avail), fit, sizeString(c.MemoryLimit), sizeString(workerOverhead))
	}
	return nil
}

// spawn starts one worker.
func (p *Pool) spawn() (*worker.Worker, error) {
	var opts proc.Options
	if len(p.cfg.WorkerCommand) > 0 {
		opts.Path = p.cfg.WorkerCommand[0]
		opts.Args = p.cfg.WorkerCommand[1:]
		if opts.Args == nil {
			opts.Args = []string{}
		}
	}
	wk, err := worker.Start(worker.Config{Init: p.init, Proc: opts, StartTimeout: p.cfg.StartTimeout, Cancel: p.quit})
	if err != nil {
		return nil, err
	}
	p.emit(Event{Kind: EventWorkerStart, WorkerPID: wk.PID()})
	return wk, nil
}

// startWorker starts a worker after the backoff the run of failures calls
// for. A failure is recorded, and may recover a damaged cache entry, fail
// New (the module cannot start) or open the breaker.
func (p *Pool) startWorker() (*worker.Worker, error) {
	if d := p.health.delay(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-p.quit:
			t.Stop()
			return nil, ErrClosed
		}
	}
	gen := p.cacheGeneration()
	wk, err := p.spawn()
	if err == nil {
		p.workerReady(wk)
		return wk, nil
	}
	if errors.Is(err, worker.ErrStartCanceled) {
		return nil, ErrClosed
	}
	p.startTrouble.Store(true)
	p.signalStart()
	what, outside := startFailure(err)
	p.emit(Event{Kind: EventWorkerExit, Reason: "worker " + what + ": " + firstLine(err.Error())})
	if !outside && p.recoverCache(err, gen) {
		return nil, err // not counted: the next start-up uses a fresh entry
	}
	if !outside && !p.isReady() {
		// The module cannot start: New reports it at once.
		p.startFailOnce.Do(func() { p.startErr = err; close(p.startFailed) })
		return nil, err
	}
	if trip := p.health.fail(what, outside, err); trip != nil {
		p.failAll(trip)
	}
	return nil, err
}

// workerReady counts a handshake. The first says what the module is and
// which handlers it has.
func (p *Pool) workerReady(wk *worker.Worker) {
	defer p.signalStart()
	defer p.readyCount.Add(1)
	p.readyOnce.Do(func() {
		p.kind = module.Kind(wk.Ready().Kind)
		if p.kind == module.KindSDK {
			p.handlers = map[string]bool{}
			for _, h := range wk.Ready().Handlers {
				p.handlers[h] = true
			}
		}
		close(p.ready)
	})
}

// signalStart wakes New, which waits for start-ups to succeed or fail.
func (p *Pool) signalStart() {
	select {
	case p.started <- struct{}{}:
	default:
	}
}

func (p *Pool) isReady() bool {
	select {
	case <-p.ready:
		return true
	default:
		return false
	}
}

// cacheGeneration counts the recoveries of the cache entry so far.
func (p *Pool) cacheGeneration() int {
	p.cacheMu.Lock()
	defer p.cacheMu.Unlock()
	return p.cacheGen
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
func (p *Pool) recoverCache(err error, gen int) bool {
	if p.init.CacheDir == "" || !mayBeCache(err) || p.isReady() {
		return false
	}
	p.cacheMu.Lock()
	defer p.cacheMu.Unlock()
	if p.cacheGen > gen {
		return true
	}
	if p.cacheRetried {
		return false
	}
	p.cacheRetried = true
	wasm, rerr := os.ReadFile(p.modPath)
	if rerr != nil {
		return false
	}
	_ = engine.Forget(p.cfg.Engine, wasm, p.init.CacheDir)
	if perr := p.prepare(context.Background(), wasm, p.init.CacheDir); perr != nil {
		if !p.isReady() {
			p.startFailOnce.Do(func() { p.startErr = perr; close(p.startFailed) })
		}
		return false
	}
	p.cacheGen++
	return true
}

// mayBeCache reports whether a worker that failed to start may have met a
// damaged entry of the compilation cache, which wazero cannot always detect
// (its checksum does not cover the table of function offsets): the worker
// crashed without naming a problem, or instantiating the compiled module
// failed. A problem the worker names otherwise (an ABI version, an
// _initialize that fails, a memory cap too small to start), a kill from
// outside and the start timeout are not the cache's: forgetting a good
// entry would make every worker compile.
func mayBeCache(err error) bool {
	if errors.Is(err, worker.ErrKilledAtStart) || errors.Is(err, worker.ErrStartTimeout) {
		return false
	}
	var f *wire.Fatal
	if !errors.As(err, &f) {
		return true
	}
	return f.Code == wire.FatalInstantiate
}

// firstLine returns s up to its first newline.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// sizeString writes a byte count the way people read it: 64 MiB, 1.5 GiB.
func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return trimZero(fmt.Sprintf("%.1f", float64(n)/(1<<30))) + " GiB"
	case n >= 1<<20:
		return trimZero(fmt.Sprintf("%.1f", float64(n)/(1<<20))) + " MiB"
	case n >= 1<<10:
		return trimZero(fmt.Sprintf("%.1f", float64(n)/(1<<10))) + " KiB"
	}
	return fmt.Sprintf("%d bytes", n)
}

func trimZero(s string) string { return strings.TrimSuffix(s, ".0") }
