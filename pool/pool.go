package pool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/safepool/safepool/internal/proc"
	"github.com/safepool/safepool/internal/wire"
	"github.com/safepool/safepool/internal/worker"
	"github.com/safepool/safepool/sandbox"
)

// Pool runs tasks in worker processes. It is safe for concurrent use.
type Pool struct {
	cfg      Config
	kind     sandbox.Kind // from the workers' handshake
	handlers map[string]bool
	modPath  string
	tmpDir   string // holds ModuleBytes written out for the workers
	init     wire.Init

	q       *queue
	drivers []*driver
	// Spare workers (Config.Spares) and the keeper's wake-up; both nil
	// without spares.
	spares     chan *worker.Worker
	spareTaken chan struct{}
	wg         sync.WaitGroup
	quit       chan struct{} // closed when workers must stop
	nextID     atomic.Uint64

	mu        sync.Mutex
	closed    bool
	runs      map[*run]struct{}
	runsDone  *sync.Cond
	killed    []KilledTask
	breaker   error
	failures  int // worker start failures since the last delivered result
	closeOnce sync.Once
}

// New validates cfg and the module, starts cfg.Workers workers and waits
// until all of them are ready.
//
// # Errors
//
// A bad config wraps ErrConfig. A module that is not wasm, imports
// something the sandbox does not provide, or lacks the exports a task
// module needs gives the sandbox's error (sandbox.ErrNotWasm and friends),
// which names the problem. A worker that cannot start gives its reason.
// New fails at once: never later, at the first task.
func New(cfg Config) (*Pool, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	p := &Pool{cfg: cfg, q: newQueue(), quit: make(chan struct{}), runs: map[*run]struct{}{}}
	p.runsDone = sync.NewCond(&p.mu)

	wasm := cfg.ModuleBytes
	if wasm == nil {
		if wasm, err = os.ReadFile(cfg.Module); err != nil {
			return nil, fmt.Errorf("pool: read module: %w", err)
		}
		if p.modPath, err = filepath.Abs(cfg.Module); err != nil {
			return nil, fmt.Errorf("pool: module path: %w", err)
		}
	}
	if p.modPath == "" {
		if p.tmpDir, err = os.MkdirTemp("", "safepool-module-"); err != nil {
			return nil, fmt.Errorf("pool: write module for the workers: %w", err)
		}
		p.modPath = filepath.Join(p.tmpDir, "module.wasm")
		if err := os.WriteFile(p.modPath, wasm, 0o600); err != nil {
			p.cleanup()
			return nil, fmt.Errorf("pool: write module for the workers: %w", err)
		}
	}
	cache := cfg.CacheDir
	if cache == "" {
		cache = sandbox.DefaultCacheDir()
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		cache = "" // run without a cache rather than not at all
	}
	// Check the module and compile it once, here, so that the workers load
	// machine code from the cache instead of each compiling it. A module
	// this machine has prepared before needs neither: the workers start at
	// once, and their handshake says what the module is.
	prepare := func() error {
		if _, err := sandbox.Prepare(ctx, cfg.Engine, wasm, cache); err != nil {
			p.cleanup()
			return fmt.Errorf("pool: module %s: %w", p.moduleName(), err)
		}
		return nil
	}
	if !sandbox.Prepared(cfg.Engine, wasm, cache) {
		if err := prepare(); err != nil {
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
	}

	// Start every worker before returning, so that a module that cannot
	// run fails here.
	wks := make([]*worker.Worker, cfg.Workers)
	errs := make([]error, cfg.Workers)
	var wg sync.WaitGroup
	for i := range wks {
		wg.Go(func() { wks[i], errs[i] = p.spawn() })
	}
	wg.Wait()
	if cache != "" && mayBeCache(errs) {
		// Perhaps a damaged cache entry: forget it and try once more.
		for i, wk := range wks {
			if wk != nil {
				wk.Kill()
				wk.Release()
				wks[i] = nil
			}
		}
		_ = sandbox.ForgetCompiled(wasm, cache)
		if err := prepare(); err != nil {
			return nil, err
		}
		for i := range wks {
			wg.Go(func() { wks[i], errs[i] = p.spawn() })
		}
		wg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		for _, wk := range wks {
			if wk != nil {
				wk.Kill()
				wk.Release()
			}
		}
		p.cleanup()
		return nil, fmt.Errorf("pool: module %s: %w", p.moduleName(), errs[firstErr(errs)])
	}
	p.kind = sandbox.Kind(wks[0].Ready().Kind)
	if p.kind == sandbox.KindSDK {
		p.handlers = map[string]bool{}
		for _, h := range wks[0].Ready().Handlers {
			p.handlers[h] = true
		}
	}
	for _, wk := range wks {
		d := &driver{p: p, wk: wk, born: time.Now(), wake: make(chan struct{}, 1)}
		p.drivers = append(p.drivers, d)
		p.wg.Add(1)
		go d.loop()
	}
	if cfg.Timeout > 0 {
		p.wg.Add(1)
		go p.watchHangs()
	}
	if cfg.Spares > 0 {
		p.spares = make(chan *worker.Worker, cfg.Spares)
		p.spareTaken = make(chan struct{}, 1)
		p.wg.Add(1)
		go p.keepSpares()
	}
	return p, nil
}

func firstErr(errs []error) int {
	for i, e := range errs {
		if e != nil {
			return i
		}
	}
	return 0
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
	wk, err := worker.Start(worker.Config{Init: p.init, Proc: opts, StartTimeout: startTimeout})
	if err != nil {
		return nil, err
	}
	p.emit(Event{Kind: EventWorkerStart, WorkerPID: wk.PID()})
	return wk, nil
}

// startTimeout bounds a worker's start-up, so that a module whose start
// never ends cannot hang the pool. The race detector slows the worker's
// module loading about tenfold.
var startTimeout = func() time.Duration {
	if raceEnabled {
		return 3 * time.Minute
	}
	return 30 * time.Second
}()

// breakerLimit is how many workers in a row may fail to start, or die
// before delivering a result, before the pool gives up.
const breakerLimit = 5

// startWorker starts a replacement worker, backing off after failures. It
// opens the breaker when workers keep failing.
func (p *Pool) startWorker() (*worker.Worker, error) {
	p.mu.Lock()
	n := p.failures
	p.mu.Unlock()
	if n > 0 {
		delay := min(10*time.Millisecond<<min(n, 7), time.Second)
		select {
		case <-time.After(delay):
		case <-p.quit:
			return nil, ErrClosed
		}
	}
	wk, err := p.spawn()
	if err == nil {
		return wk, nil
	}
	if errors.Is(err, worker.ErrKilledAtStart) {
		return nil, err // a SIGKILL from outside is not the module's fault: not counted
	}
	p.mu.Lock()
	p.failures++
	if p.failures >= breakerLimit && p.breaker == nil {
		p.breaker = fmt.Errorf("%w: %d workers in a row failed; last: %v", ErrCrashLoop, p.failures, err)
	}
	brk := p.breaker
	p.mu.Unlock()
	if brk != nil {
		p.failAll(brk)
	}
	return nil, err
}

// workerDelivered resets the breaker's count: this module can run tasks.
func (p *Pool) workerDelivered() {
	p.mu.Lock()
	p.failures = 0
	p.mu.Unlock()
}

// workerDiedYoung counts a worker that exited by itself soon after starting
// toward the breaker.
func (p *Pool) workerDiedYoung() {
	p.mu.Lock()
	p.failures++
	p.mu.Unlock()
}

func (p *Pool) breakerOpen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.breaker != nil
}

// failAll aborts every run with err.
func (p *Pool) failAll(err error) {
	p.mu.Lock()
	runs := make([]*run, 0, len(p.runs))
	for r := range p.runs {
		runs = append(runs, r)
	}
	p.mu.Unlock()
	for _, r := range runs {
		r.abort(err)
	}
}

func (p *Pool) stopping() bool {
	select {
	case <-p.quit:
		return true
	default:
		return p.breakerOpen()
	}
}

// watchHangs kills workers whose task ran past Timeout + hangGrace.
func (p *Pool) watchHangs() {
	defer p.wg.Done()
	t := time.NewTicker(max(p.cfg.Timeout/4, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			return
		case now := <-t.C:
			for _, d := range p.drivers {
				d.checkHang(now)
			}
		}
	}
}

// begin registers a new run, or fails when the pool cannot take one.
func (p *Pool) begin(ctx context.Context, fn string, n int, stream chan Result) (*run, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.kind == sandbox.KindSDK && !p.handlers[fn] {
		return nil, fmt.Errorf("%w %q: the module exports %v", ErrUnknownFunc, fn, p.handlerNames())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.breaker != nil {
		return nil, p.breaker
	}
	if p.closed {
		return nil, ErrClosed
	}
	r := p.newRun(ctx, fn, n, stream)
	p.runs[r] = struct{}{}
	return r, nil
}

// Handlers returns the function names an SDK module exports, or nil for a
// command module.
func (p *Pool) Handlers() []string { return p.handlerNames() }

func (p *Pool) handlerNames() []string {
	if p.handlers == nil {
		return nil
	}
	names := make([]string, 0, len(p.handlers))
	for h := range p.handlers {
		names = append(names, h)
	}
	slices.Sort(names)
	return names
}

func (p *Pool) runEnded(r *run) {
	p.mu.Lock()
	delete(p.runs, r)
	p.runsDone.Broadcast()
	p.mu.Unlock()
}

// stopRun stops the workers running tasks of an aborted run. Its queued
// tasks are dropped when popped.
func (p *Pool) stopRun(r *run) {
	for _, d := range p.drivers {
		d.killIf(r)
	}
}

func (p *Pool) recordKilled(kt KilledTask) {
	p.mu.Lock()
	p.killed = append(p.killed, kt)
	p.mu.Unlock()
}

// KilledTasks lists every killed task of every map this pool ran, in the
// order their final results came in: the seed's get_killed_tasks().
func (p *Pool) KilledTasks() []KilledTask {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]KilledTask(nil), p.killed...)
}

// Close stops taking new work, waits for the maps in flight to finish, and
// reaps every worker. It is safe to call more than once; later calls wait
// for the first and return nil.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	for len(p.runs) > 0 && p.breaker == nil {
		p.runsDone.Wait()
	}
	p.mu.Unlock()
	p.shutdown(false)
	return nil
}

// Terminate kills every worker now. Maps in flight end with ErrClosed. It is
// safe to call more than once, and after Close.
func (p *Pool) Terminate() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.failAll(ErrClosed)
	p.shutdown(true)
	return nil
}

// shutdown stops the drivers: idle workers are retired gracefully, and with
// kill every worker is killed first.
func (p *Pool) shutdown(kill bool) {
	p.closeOnce.Do(func() { close(p.quit) })
	if kill {
		for _, d := range p.drivers {
			d.kill()
		}
	}
	p.wg.Wait()
	p.cleanup()
}

func (p *Pool) cleanup() {
	if p.tmpDir != "" {
		os.RemoveAll(p.tmpDir)
	}
}
