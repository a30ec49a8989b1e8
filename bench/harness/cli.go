package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/safepool/safepool/internal/guestbuild"
)

// cliWarmLines is the size of the untimed run each system makes first, so
// that every timed run starts with the compilation cache and the page
// cache warm.
const cliWarmLines = 1000

// cliSample is how often the peak RSS (VmHWM) of a child and of its
// workers is read.
const cliSample = 5 * time.Millisecond

// cliSystem is one program of the command-line scenario.
type cliSystem struct {
	name, guest, note string
	run               func(ctx context.Context, in, out string) (childRun, error)
	check             func(out string, n int) error
}

// cli is scenario 8: `safepool run` over files of CLILines JSON numbers,
// one per line, beside a Python script that does the same job with
// multiprocessing.Pool. Each is a child process measured from outside:
// wall time, its own peak RSS and its workers', and the CPU time its wait
// reports. Every output file is checked, line by line.
func (b *bench) cli(ctx context.Context) error {
	b.opts.logf("%s: building safepool", ScenarioCLI)
	exe, err := buildCLI(ctx, filepath.Join(b.tmp, "safepool"))
	if err != nil {
		return err
	}
	w := strconv.Itoa(b.opts.Workers)
	var systems []*cliSystem
	for _, g := range b.opts.Guests {
		args := []string{"run", "--module", b.modules[g], "--func", "square", "--workers", w,
			"--progress", "never", "--cache-dir", b.opts.CacheDir}
		systems = append(systems, &cliSystem{
			name: SysCLI, guest: g,
			note: fmt.Sprintf("`safepool run --module %s.wasm --func square --workers %s --in FILE --out FILE --progress never`, built with `go build ./cmd/safepool`, warm compilation cache (`--cache-dir`)", g, w),
			run: func(ctx context.Context, in, out string) (childRun, error) {
				return runChild(ctx, exe, append(args, "--in", in, "--out", out)...)
			},
			check: checkCLIOutput,
		})
	}
	if b.py.enabled() {
		systems = append(systems, &cliSystem{
			name: SysPyCLI,
			note: fmt.Sprintf("`python3 cli_baseline.py %s IN OUT` ([python/cli_baseline.py](python/cli_baseline.py)), run on the interpreter's `sys.executable` rather than a launcher such as a pyenv shim: reads every line into a list with `json.loads`, `multiprocessing.Pool(%s).map(square, xs)` with the default chunksize, writes every square with `json.dumps`", w, w),
			run: func(ctx context.Context, in, out string) (childRun, error) {
				return b.py.runCLI(ctx, in, out)
			},
			check: checkPlainSquares,
		})
	}
	// pyFailed drops the Python script after a failure, which is recorded
	// apart and does not fail the scenario, as for the other baselines.
	pyFailed := func(s *cliSystem, err error) bool {
		if s.name != SysPyCLI {
			return false
		}
		b.res.fail(ScenarioCLI+"/python", err)
		b.opts.logf("%s: python FAILED: %v", ScenarioCLI, err)
		return true
	}

	// Untimed warm-up runs.
	in := filepath.Join(b.tmp, "cli-in.jsonl")
	out := filepath.Join(b.tmp, "cli-out.jsonl")
	defer os.Remove(in)
	defer os.Remove(out)
	if err := writeNumbers(in, cliWarmLines); err != nil {
		return err
	}
	live := systems[:0:0]
	for _, s := range systems {
		_, err := s.run(ctx, in, out)
		if err == nil {
			err = s.check(out, cliWarmLines)
		}
		if err != nil {
			err = fmt.Errorf("%s%s, warm-up over %d lines: %w", s.name, parenGuest(s.guest), cliWarmLines, err)
			if pyFailed(s, err) {
				continue
			}
			return err
		}
		live = append(live, s)
	}
	systems = live

	for _, n := range b.opts.CLILines {
		b.opts.logf("%s: %s lines", ScenarioCLI, fmtCount(n))
		if err := writeNumbers(in, n); err != nil {
			return err
		}
		live = systems[:0:0]
		for _, s := range systems {
			b.waitQuiet()
			m, err := s.run(ctx, in, out)
			row := CLIRun{System: s.name, Guest: s.guest, Lines: n, Note: s.note,
				Elapsed: m.wall, PeakKiB: m.peakKiB, Samples: m.samples, WorkerPeakKiB: m.workerKiB, Workers: m.workers, CPU: m.cpu}
			if err == nil {
				err = s.check(out, n)
				row.Correct = err == nil
			}
			os.Remove(out)
			if err != nil {
				err = fmt.Errorf("%s%s over %s lines: %w", s.name, parenGuest(s.guest), fmtCount(n), err)
				if pyFailed(s, err) {
					continue
				}
				if m.wall > 0 {
					b.res.CLI = append(b.res.CLI, row)
				}
				return err
			}
			b.res.CLI = append(b.res.CLI, row)
			live = append(live, s)
		}
		systems = live
	}
	return nil
}

// runCLI runs cli_baseline.py over in, writing out.
func (r *pyRunner) runCLI(ctx context.Context, in, out string) (childRun, error) {
	return runChild(ctx, r.cliExe, r.cliScript, strconv.Itoa(r.opts.Workers), in, out)
}

// buildCLI builds cmd/safepool of the repository into exe.
func buildCLI(ctx context.Context, exe string) (string, error) {
	root, err := guestbuild.Root()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", exe, "./cmd/safepool")
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building cmd/safepool: %v: %s", err, lastBytes(msg, 2000))
	}
	return exe, nil
}

// goTool returns the go command: the one in GOROOT if that is set, else
// the one on PATH (as internal/guestbuild does).
func goTool() string {
	if goroot := os.Getenv("GOROOT"); goroot != "" {
		p := filepath.Join(goroot, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "go"
}

// childRun is what one run of a child process measured.
type childRun struct {
	wall time.Duration
	// peakKiB is the child's own VmHWM; workerKiB the largest VmHWM of
	// the processes it started, of which there were workers.
	peakKiB, workerKiB int64
	workers, samples   int
	// cpu is the user and system time of the child and of the
	// descendants it reaped, from the rusage of its wait.
	cpu time.Duration
}

// runChild runs a program to its end, its output discarded, and measures
// it from outside. It fails when the program exits with an error.
//
// Memory comes from /proc, not from ru_maxrss of the wait: Linux keeps
// ru_maxrss across execve, and a child of a Go program starts as a
// vfork that shares this process's memory, so the child's ru_maxrss is
// never below this process's own peak (about 1 GiB after the throughput
// scenario). It also takes in the peaks of the descendants it reaped.
func runChild(ctx context.Context, name string, args ...string) (childRun, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return childRun{}, err
	}
	// Start returns once the program is exec'd, so every sample is of the
	// program itself.
	s := sampleTree(cmd.Process.Pid, cliSample)
	// Wait for the exit without reaping, so that no sample can read a
	// process that took over the pid.
	werr := waitExited(cmd.Process.Pid)
	var m childRun
	m.wall = time.Since(start)
	s.halt(&m)
	err := cmd.Wait()
	if werr != nil && err == nil {
		err = werr
	}
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			m.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	if err != nil {
		return m, fmt.Errorf("%s: %v: %s", filepath.Base(name), err, bytes.TrimSpace(lastBytes(stderr.Bytes(), 2000)))
	}
	return m, nil
}

// treeSampler reads the peak RSS (VmHWM) of a process and of the
// processes it started (its children) every few milliseconds. VmHWM only
// grows, so a sample loses only what a process gained since the last one.
//
// A child's figure is its last reading, not its largest: a child started
// with vfork, as Go starts one, shares its parent's memory until it execs,
// so a reading taken before the exec is its parent's peak, and the exec
// starts the figure again. A child read fewer than twice is left out (it
// lived for less than a sample), and so is a child that does not end with
// SIGCHLD to its parent: the Go runtime starts one with vfork and ends it
// at once to learn whether clone takes CLONE_PIDFD, and on a busy machine
// it may wait tens of milliseconds to run, sharing its parent's memory.
type treeSampler struct {
	root    string
	mu      sync.Mutex
	stopped bool
	peak    int64
	kids    map[int]*kidPeak
	samples int
	stop    chan struct{}
	done    chan struct{}
}

type kidPeak struct {
	last  int64 // VmHWM at the last reading
	reads int
	skip  bool // not a worker
}

func sampleTree(pid int, every time.Duration) *treeSampler {
	s := &treeSampler{root: strconv.Itoa(pid), kids: map[int]*kidPeak{}, stop: make(chan struct{}), done: make(chan struct{})}
	s.take()
	tick(every, s.take, s.stop, s.done)
	return s
}

func (s *treeSampler) take() {
	// The lock is held across the reads so that none starts after halt:
	// once the child is reaped, its pid may name another process.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	kib, err := statusKiB(s.root, "VmHWM")
	if err != nil {
		return // the child exited: a zombie has no memory figures
	}
	s.peak = max(s.peak, kib)
	s.samples++
	for _, pid := range childrenOf(s.root) {
		if s.kids[pid] == nil {
			st, err := readStat(pid)
			s.kids[pid] = &kidPeak{skip: err != nil || st.exitSignal != int(syscall.SIGCHLD)}
		}
	}
	for pid, k := range s.kids {
		if k.skip {
			continue
		}
		if kib, err := statusKiB(strconv.Itoa(pid), "VmHWM"); err == nil {
			k.last = kib
			k.reads++
		}
	}
}

// halt stops the sampler and puts what it found in m.
func (s *treeSampler) halt(m *childRun) {
	s.mu.Lock()
	s.stopped = true
	m.peakKiB, m.samples = s.peak, s.samples
	for _, k := range s.kids {
		if !k.skip && k.reads >= 2 {
			m.workers++
			m.workerKiB = max(m.workerKiB, k.last)
		}
	}
	s.mu.Unlock()
	close(s.stop)
	<-s.done
}

// waitExited blocks until the child pid has exited, leaving it to be
// reaped (waitid with WNOWAIT).
func waitExited(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// writeNumbers writes the JSON numbers 0 … n-1, one per line, to path.
func writeNumbers(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var buf []byte
	for i := range n {
		buf = strconv.AppendInt(buf[:0], int64(i), 10)
		buf = append(buf, '\n')
		w.Write(buf)
	}
	err = w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// checkCLIOutput checks a file of `safepool run` records: n of them, in
// input order, each ok with the square of its index as output.
func checkCLIOutput(path string, n int) error {
	var want []byte
	i, err := eachLine(path, func(i int, line []byte) error {
		sq := int64(i) * int64(i)
		want = fmt.Appendf(want[:0], `{"index":%d,"status":"ok","output":%d,"error":"","attempts":1}`, i, sq)
		if bytes.Equal(line, want) {
			return nil
		}
		// Not the usual bytes: judge the record by its fields.
		var rec struct {
			Index    int
			Status   string
			Output   json.RawMessage
			Error    string
			Attempts int
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return fmt.Errorf("record %d: %v: %.200q", i, err, line)
		}
		if rec.Index != i || rec.Status != "ok" || string(rec.Output) != strconv.FormatInt(sq, 10) {
			return fmt.Errorf("record %d is not ok with output %d: %.200q", i, sq, line)
		}
		return nil
	})
	if err == nil && i != n {
		err = fmt.Errorf("%d records for %d lines", i, n)
	}
	return err
}

// checkPlainSquares checks a file of n lines, the squares of 0 … n-1.
func checkPlainSquares(path string, n int) error {
	var want []byte
	i, err := eachLine(path, func(i int, line []byte) error {
		want = strconv.AppendInt(want[:0], int64(i)*int64(i), 10)
		if !bytes.Equal(line, want) {
			return fmt.Errorf("line %d is %.200q, want %s", i+1, line, want)
		}
		return nil
	})
	if err == nil && i != n {
		err = fmt.Errorf("%d lines for %d inputs", i, n)
	}
	return err
}

// eachLine calls fn with every line of path, counted from 0, and returns
// the number of lines. A last line without its newline is an error.
func eachLine(path string, fn func(i int, line []byte) error) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	i := 0
	for {
		line, err := r.ReadSlice('\n')
		switch {
		case errors.Is(err, io.EOF) && len(line) == 0:
			return i, nil
		case errors.Is(err, io.EOF):
			return i, fmt.Errorf("line %d has no newline: %.200q", i+1, line)
		case err != nil:
			return i, fmt.Errorf("line %d: %w", i+1, err)
		}
		if err := fn(i, line[:len(line)-1]); err != nil {
			return i, err
		}
		i++
	}
}
