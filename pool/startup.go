package pool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/internal/hostconn"
	"github.com/safepool/safepool/internal/wire"
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
	if cfg.Cluster == "" || cfg.Cluster == "embedded" {
		if err := checkWorkers(cfg); err != nil {
			return nil, err
		}
	}
	p := &Pool{cfg: cfg, q: newQueue(), runs: map[*run]struct{}{}}
	if t, ok := cfg.TaskObserver.(Tallier); ok {
		p.tally = t.Tally()
	}
	p.runsDone = sync.NewCond(&p.mu)
	p.hooks = &runHooks{killed: p.recordKilled, stop: p.stopRun, ended: p.runEnded}
	if cfg.Cluster != "" {
		return p.startCluster(ctx)
	}
	modPath, wasm, err := p.loadModule()
	if err != nil {
		return nil, err
	}
	cache := p.cacheDir()
	// Check the module and compile it once, here, so that the workers load
	// machine code from the cache instead of each compiling it. A module
	// this machine has prepared before needs neither: the workers start at
	// once, and their handshake says what the module is.
	if !engine.Prepared(cfg.Engine, wasm, cache, compileOptions(cfg)) {
		if err := prepareModule(ctx, cfg, wasm, cache); err != nil {
			p.cleanup()
			return nil, err
		}
	}
	init := workerInit(cfg, modPath, cache)
	p.disp = newLocal(cfg, init, p.q, p.settle, p.emit, p.failAll)
	return p.ready(ctx)
}

// ready waits for the dispatcher's first workers and learns from them what
// the module is.
func (p *Pool) ready(ctx context.Context) (*Pool, error) {
	cfg := p.cfg
	kind, handlers, err := p.disp.waitReady(ctx)
	if err != nil {
		p.Terminate()
		var se *StartError
		var me *moduleStartError
		switch {
		case errors.As(err, &se):
			return nil, err
		case errors.As(err, &me):
			return nil, fmt.Errorf("pool: module %s: %w", moduleName(cfg), me.err)
		}
		return nil, fmt.Errorf("pool: start-up: %w", err)
	}
	p.kind = kind
	if kind == module.KindSDK {
		p.handlers = map[string]bool{}
		for _, h := range handlers {
			p.handlers[h] = true
		}
	}
	return p, nil
}

// loadModule reads the module and gives the workers a path to it: the
// module's own, or a copy of ModuleBytes in a temporary directory.
func (p *Pool) loadModule() (path string, wasm []byte, err error) {
	if wasm = p.cfg.ModuleBytes; wasm == nil {
		if wasm, err = os.ReadFile(p.cfg.Module); err != nil {
			return "", nil, fmt.Errorf("pool: read module: %w", err)
		}
		if path, err = filepath.Abs(p.cfg.Module); err != nil {
			return "", nil, fmt.Errorf("pool: module path: %w", err)
		}
		return path, wasm, nil
	}
	if p.tmpDir, err = os.MkdirTemp("", "safepool-module-"); err != nil {
		return "", nil, fmt.Errorf("pool: write module for the workers: %w", err)
	}
	path = filepath.Join(p.tmpDir, "module.wasm")
	if err := os.WriteFile(path, wasm, 0o600); err != nil {
		p.cleanup()
		return "", nil, fmt.Errorf("pool: write module for the workers: %w", err)
	}
	return path, wasm, nil
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

// prepareModule checks the module and compiles it into the cache.
func prepareModule(ctx context.Context, cfg Config, wasm []byte, cache string) error {
	if _, err := engine.Prepare(ctx, cfg.Engine, wasm, cache, compileOptions(cfg)); err != nil {
		return fmt.Errorf("pool: module %s: %w", moduleName(cfg), err)
	}
	return nil
}

// compileOptions are the engine settings the workers compile with (see
// sandbox): without a Timeout no task is ever interrupted, and the module is
// compiled without the engine's interrupt checks; with FreshInstance it is
// compiled so that instances can be reset. They are part of the cache
// entry's key.
func compileOptions(cfg Config) engine.Options {
	return engine.Options{NoInterrupt: cfg.Timeout == 0, Resettable: cfg.FreshInstance}
}

func moduleName(cfg Config) string {
	if cfg.Module != "" {
		return cfg.Module
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

// mayBeCache reports whether a worker that failed to start may have met a
// damaged entry of the compilation cache, which wazero cannot always detect
// (its checksum does not cover the table of function offsets): the worker
// crashed without naming a problem, or instantiating the compiled module
// failed. A problem the worker names otherwise (an ABI version, an
// _initialize that fails, a memory cap too small to start), a kill from
// outside and the start timeout are not the cache's: forgetting a good
// entry would make every worker compile.
func mayBeCache(err error) bool {
	if errors.Is(err, hostconn.ErrKilledAtStart) || errors.Is(err, hostconn.ErrStartTimeout) {
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
