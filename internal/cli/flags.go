package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/pool"
)

// runOptions are the flags of 'safepool run'.
type runOptions struct {
	module       string
	fn           string
	workers      int
	spares       int
	memory       int64
	timeout      time.Duration
	startTimeout time.Duration
	startGiveUp  time.Duration
	onKill       pool.Policy
	onError      pool.Policy
	retries      int
	fresh        bool
	maxTasks     int
	outputLimit  int64
	overcommit   bool
	in           string
	out          string
	resume       bool
	killed       string
	stats        string
	encoding     encoding
	progress     progressMode
	engine       string
	cacheDir     string
	conn         connFlags // --nats and how to connect
	metrics      string    // --metrics ADDR
	logLevel     logLevelFlag
	grants       grantFlags // --env, --arg, --dir

	// Set by startObserving, for the pool's config.
	observer pool.TaskObserver // the --metrics collector
	logger   *slog.Logger
}

// parseRunFlags parses and checks the flags of 'safepool run'. Every error
// it returns exits with code 2 and says what to do; -h gives a nil options
// and a nil error after printing the help to stdout.
func parseRunFlags(args []string, stdout io.Writer) (*runOptions, error) {
	o := &runOptions{onKill: pool.Skip, onError: pool.Skip}
	var bad error // the first bad value, in words (see flagValue)
	fs := runFlags(o, &bad)
	if err := fs.Parse(args); err != nil {
		switch {
		case errors.Is(err, flag.ErrHelp):
			fmt.Fprint(stdout, runHelp)
			return nil, nil
		case bad != nil:
			return nil, usageErrorf("run: %v", bad)
		}
		return nil, usageErrorf("run: %s; run 'safepool run -h' for the flags", parseError(err))
	}
	if fs.NArg() > 0 {
		return nil, usageErrorf("run: unexpected argument %q; the input comes from --in PATH or stdin (run 'safepool run -h' for the flags)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := o.check(set); err != nil {
		return nil, usageErrorf("run: %v", err)
	}
	return o, nil
}

// runFlags is the flag set of 'safepool run', which fills o and keeps the
// first bad value in *bad.
func runFlags(o *runOptions, bad *error) *flag.FlagSet {
	fs := flag.NewFlagSet("safepool run", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by parseRunFlags, help by runHelp
	val := func(name string, v flag.Value) { fs.Var(flagValue{name, v, bad}, name, "") }
	boolean := func(name string, p *bool) { fs.Var(boolValue{flagValue{name, (*boolFlag)(p), bad}}, name, "") }

	fs.StringVar(&o.module, "module", "", "")
	fs.StringVar(&o.fn, "func", "", "")
	fs.StringVar(&o.in, "in", "", "")
	fs.StringVar(&o.out, "out", "", "")
	boolean("resume", &o.resume)
	fs.StringVar(&o.killed, "killed", "", "")
	fs.StringVar(&o.stats, "stats", "", "")
	val("encoding", &o.encoding)
	val("workers", (*countFlag)(&o.workers))
	val("spares", (*countFlag)(&o.spares))
	val("memory", (*sizeFlag)(&o.memory))
	val("timeout", (*durationFlag)(&o.timeout))
	val("on-kill", (*policyFlag)(&o.onKill))
	val("on-error", (*policyFlag)(&o.onError))
	val("retries", (*countFlag)(&o.retries))
	boolean("fresh-instance", &o.fresh)
	val("max-tasks-per-worker", (*countFlag)(&o.maxTasks))
	val("output-limit", (*sizeFlag)(&o.outputLimit))
	val("start-timeout", (*durationFlag)(&o.startTimeout))
	val("start-give-up", (*durationFlag)(&o.startGiveUp))
	boolean("overcommit", &o.overcommit)
	val("progress", &o.progress)
	fs.StringVar(&o.engine, "engine", "", "")
	fs.StringVar(&o.cacheDir, "cache-dir", "", "")
	o.conn.add(fs)
	fs.StringVar(&o.metrics, "metrics", "", "")
	val("log-level", &o.logLevel)
	val("env", &o.grants.env)
	val("arg", &o.grants.args)
	val("dir", &o.grants.dirs)
	return fs
}

// parseError rewords the flag package's own errors, which name a flag
// with one dash.
func parseError(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Sprintf("unknown flag --%s", name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Sprintf("--%s needs a value, as in --%s VALUE or --%s=VALUE", name, name, name)
	}
	return msg
}

// check checks the values against each other and their ranges. set holds
// the flags given on the command line.
func (o *runOptions) check(set map[string]bool) error {
	retrying := o.onKill == pool.Retry || o.onError == pool.Retry
	switch {
	case o.module == "":
		return errors.New("--module is required: pass the .wasm file to run, such as --module tasks.wasm")
	case o.workers < 0:
		return fmt.Errorf("--workers %d is negative; use a positive number, or 0 (the default) for one worker per CPU", o.workers)
	case o.spares < 0:
		return fmt.Errorf("--spares %d is negative; use 0 (the default) or more spare workers", o.spares)
	case set["memory"] && (o.memory < minMemory || o.memory > maxMemory):
		return fmt.Errorf("--memory %s is out of range; use a size from 64KiB to 4GiB, such as 64MiB", formatSize(o.memory))
	case o.timeout < 0:
		return fmt.Errorf("--timeout %s is negative; use a duration such as 500ms or 2s, or leave it out for no deadline", o.timeout)
	case set["start-timeout"] && o.startTimeout <= 0:
		return fmt.Errorf("--start-timeout %s must be positive; use a duration such as 30s (the default) or 2m", o.startTimeout)
	case set["start-give-up"] && o.startGiveUp <= 0:
		return fmt.Errorf("--start-give-up %s must be positive; use a duration such as 10s (the default) or 1m", o.startGiveUp)
	case set["retries"] && o.retries < 1:
		return fmt.Errorf("--retries %d must be at least 1; it is the most times a task runs, the first included", o.retries)
	case set["retries"] && !retrying:
		return errors.New("--retries only applies with --on-kill retry or --on-error retry; add one of them or drop --retries")
	case o.maxTasks < 0:
		return fmt.Errorf("--max-tasks-per-worker %d is negative; use a positive number, or 0 (the default) to never recycle workers", o.maxTasks)
	case set["output-limit"] && (o.outputLimit < 1 || o.outputLimit > maxOutputLimit):
		return fmt.Errorf("--output-limit %s is out of range; use a size from 1B to 1GiB, such as 16MiB (the default)", formatSize(o.outputLimit))
	case o.resume && o.out == "":
		return errors.New("--resume needs --out PATH: it continues the file an interrupted run wrote there, and stdout cannot be read back")
	}
	if o.conn.nats == "" {
		for _, f := range []string{"creds", "nkey-seed", "token", "user", "password", "tls-ca", "tls-cert", "tls-key"} {
			if set[f] {
				return fmt.Errorf("--%s is for running on a cluster; add --nats URL, or drop it", f)
			}
		}
	}
	if err := o.conn.check(set); err != nil {
		return err
	}
	if err := engine.Check(o.engine); err != nil {
		if how, ok := otherBuilds[o.engine]; ok && errors.Is(err, engine.ErrUnavailable) {
			return fmt.Errorf("--engine %q: this safepool has no %s (it has %s); %s", o.engine, o.engine, strings.Join(engine.Names(), ", "), how)
		}
		return fmt.Errorf("--engine %q: %s", o.engine, strings.TrimPrefix(err.Error(), "engine: "))
	}
	return nil
}

// otherBuilds says, for each engine that is not in every build of the
// command, how to get the build that has it. The engine's own advice (add
// an import to the program) is for programs that import the pool; a user
// of the command installs another build of it instead.
var otherBuilds = map[string]string{
	engine.Wasmtime: "install the wasmtime build of safepool, which needs cgo and a C compiler: " +
		"go install github.com/safepool/safepool/engine/wasmtime/cmd/safepool@latest " +
		"(or, in a checkout of safepool: cd engine/wasmtime && go install ./cmd/safepool)",
}

// config turns the options into a pool config.
func (o *runOptions) config(workerCmd []string) pool.Config {
	cfg := pool.Config{
		Module:            o.module,
		Workers:           o.workers,
		Spares:            o.spares,
		MemoryLimit:       o.memory,
		Timeout:           o.timeout,
		StartTimeout:      o.startTimeout,
		StartGiveUp:       o.startGiveUp,
		Overcommit:        o.overcommit,
		KillPolicy:        o.onKill,
		OnError:           o.onError,
		Retry:             pool.RetryPolicy{MaxAttempts: o.retries},
		FreshInstance:     o.fresh,
		MaxTasksPerWorker: o.maxTasks,
		OutputLimit:       o.outputLimit,
		WorkerCommand:     workerCmd,
		Engine:            o.engine,
		CacheDir:          o.cacheDir,
		Cluster:           o.conn.nats,
		ClusterOptions:    o.clusterOptions(),
		TaskObserver:      o.observer,
		Logger:            o.logger,
	}
	o.grants.apply(&cfg)
	return cfg
}

// clusterOptions are the connection options of a run on a cluster, nil for
// a local run.
func (o *runOptions) clusterOptions() any {
	if o.conn.nats == "" {
		return nil
	}
	return o.conn.options()
}

// abortsOn reports whether a task that ended with status s stops the run
// under the options' policies.
func (o *runOptions) abortsOn(s pool.Status) bool {
	switch {
	case s.IsKilledTask():
		return o.onKill == pool.Abort
	case s == pool.StatusError:
		return o.onError == pool.Abort
	}
	return false
}

// Bounds of --memory (one WebAssembly page, and all a 32-bit memory can
// address) and of --output-limit (the largest message a worker sends).
const (
	minMemory      = 64 << 10
	maxMemory      = 4 << 30
	maxOutputLimit = 1 << 30
)
