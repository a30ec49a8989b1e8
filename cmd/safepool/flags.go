package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/pool"
)

// runOptions are the flags of 'safepool run'.
type runOptions struct {
	module   string
	fn       string
	workers  int
	spares   int
	memory   sizeFlag
	timeout  time.Duration
	onKill   policyFlag
	retries  int
	in       string
	out      string
	killed   string
	stats    string
	progress progressFlag
	engine   string
}

// parseRunFlags parses and checks the flags of 'safepool run'. Every error
// it returns exits with code 2 and says what to do; -h gives a nil options
// and a nil error after printing the help to stdout.
func parseRunFlags(args []string, stdout io.Writer) (*runOptions, error) {
	o := &runOptions{onKill: policyFlag(pool.Skip), progress: progressAuto}
	fs := flag.NewFlagSet("safepool run", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by the caller, help by runHelp
	fs.StringVar(&o.module, "module", "", "")
	fs.StringVar(&o.fn, "func", "", "")
	fs.IntVar(&o.workers, "workers", 0, "")
	fs.IntVar(&o.spares, "spares", 0, "")
	fs.Var(&o.memory, "memory", "")
	fs.DurationVar(&o.timeout, "timeout", 0, "")
	fs.Var(&o.onKill, "on-kill", "")
	fs.IntVar(&o.retries, "retries", 0, "")
	fs.StringVar(&o.in, "in", "", "")
	fs.StringVar(&o.out, "out", "", "")
	fs.StringVar(&o.killed, "killed", "", "")
	fs.StringVar(&o.stats, "stats", "", "")
	fs.Var(&o.progress, "progress", "")
	fs.StringVar(&o.engine, "engine", "", "")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, runHelp)
			return nil, nil
		}
		return nil, usageErrorf("run: %v; run 'safepool run -h' for the flags", err)
	}
	if fs.NArg() > 0 {
		return nil, usageErrorf("run: unexpected argument %q; the input comes from --in PATH or stdin (run 'safepool run -h' for the flags)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	switch {
	case o.module == "":
		return nil, usageErrorf("run: --module is required: pass the .wasm file to run, such as --module tasks.wasm")
	case o.workers < 0:
		return nil, usageErrorf("run: --workers %d is negative; use a positive number, or leave it out for one worker per CPU", o.workers)
	case o.spares < 0:
		return nil, usageErrorf("run: --spares %d is negative; use 0 (the default) or more spare workers", o.spares)
	case o.timeout < 0:
		return nil, usageErrorf("run: --timeout %s is negative; use a duration such as 500ms or 2s, or leave it out for no deadline", o.timeout)
	case set["memory"] && (o.memory < minMemory || o.memory > maxMemory):
		return nil, usageErrorf("run: --memory %s is out of range; use a size from 64KiB to 4GiB, such as 64MiB", o.memory.String())
	case set["retries"] && o.retries < 1:
		return nil, usageErrorf("run: --retries %d must be at least 1; it is the most times a task runs, the first included", o.retries)
	case set["retries"] && pool.Policy(o.onKill) != pool.Retry:
		return nil, usageErrorf("run: --retries only applies with --on-kill retry; add --on-kill retry or drop --retries")
	}
	if err := engine.Check(o.engine); err != nil {
		return nil, usageErrorf("run: --engine %q: %s", o.engine, strings.TrimPrefix(err.Error(), "engine: "))
	}
	return o, nil
}

// config turns the options into a pool config.
func (o *runOptions) config(workerCmd []string) pool.Config {
	return pool.Config{
		Module:        o.module,
		Workers:       o.workers,
		Spares:        o.spares,
		MemoryLimit:   int64(o.memory),
		Timeout:       o.timeout,
		OnKill:        pool.Policy(o.onKill),
		Retry:         pool.RetryPolicy{MaxAttempts: o.retries},
		WorkerCommand: workerCmd,
		Engine:        o.engine,
	}
}

// Bounds of --memory: one WebAssembly page, and all a 32-bit memory can
// address.
const (
	minMemory = 64 << 10
	maxMemory = 4 << 30
)

// sizeFlag is a number of bytes written as a size: 67108864, 64MiB, 1.5GiB,
// 512KiB or 64MB.
type sizeFlag int64

func (s *sizeFlag) String() string { return formatSize(int64(*s)) }

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

// sizeUnits are the units parseSize accepts, lower-cased: IEC units are
// powers of 1024, SI units powers of 1000.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
}

// parseSize parses a size: a number, optionally with a fraction, followed by
// an optional unit (B, KiB, MiB, GiB, KB, MB or GB; case does not matter).
// The single letters K, M and G are refused because people mean different
// things by them.
func parseSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	if num == "" {
		return 0, fmt.Errorf("size %q does not start with a number; write it like 64MiB, 512KiB or 1GiB", v)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		switch unit {
		case "k", "m", "g":
			return 0, fmt.Errorf("size %q is ambiguous; write %s%siB (powers of 1024) or %s%sB (powers of 1000)",
				v, num, strings.ToUpper(unit), num, strings.ToUpper(unit))
		}
		return 0, fmt.Errorf("size %q has an unknown unit %q; use B, KiB, MiB, GiB, KB, MB or GB", v, s[i:])
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %q is not a number", v, num)
	}
	bytes := f * float64(mult)
	if bytes > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q is too large", v)
	}
	if bytes != math.Trunc(bytes) {
		return 0, fmt.Errorf("size %q is not a whole number of bytes", v)
	}
	return int64(bytes), nil
}

// formatSize writes n in the largest IEC unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// policyFlag is --on-kill: skip, abort or retry.
type policyFlag pool.Policy

func (p *policyFlag) String() string { return pool.Policy(*p).String() }

func (p *policyFlag) Set(v string) error {
	pol, err := pool.ParsePolicy(v)
	if err != nil {
		return fmt.Errorf("use skip, abort or retry")
	}
	*p = policyFlag(pol)
	return nil
}

// progressFlag is --progress: auto, always or never.
type progressFlag uint8

const (
	progressAuto progressFlag = iota
	progressAlways
	progressNever
)

var progressNames = []string{"auto", "always", "never"}

func (p *progressFlag) String() string { return progressNames[*p] }

func (p *progressFlag) Set(v string) error {
	for i, n := range progressNames {
		if v == n {
			*p = progressFlag(i)
			return nil
		}
	}
	return fmt.Errorf("use auto, always or never")
}
