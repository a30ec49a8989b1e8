package proc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"

	"github.com/safepool/safepool/internal/tail"
)

// Options says how to start a worker.
type Options struct {
	// Path is the executable. Empty means the current binary.
	Path string
	// Args are the arguments after argv[0]. Nil means []string{WorkerArg}.
	Args []string
	// StderrTail is how many bytes of the worker's own stderr to keep, for
	// crash reports. Zero means 16 KiB.
	StderrTail int
}

// Process is a running worker. Its methods are safe for concurrent use.
type Process struct {
	pid     int
	cmd     *exec.Cmd
	toW     *os.File    // host writes frames here
	toWSize int         // toW's pipe buffer, bytes
	fromW   *os.File    // host reads frames here
	reader  *SpinReader // fromW, polled briefly before parking when asked
	slot    *Slot
	stderr  *tail.Buffer

	exited   chan struct{} // closed when Wait returned and stderr drained
	exit     Exit
	killOnce sync.Once
	relOnce  sync.Once
}

// Start starts a worker process.
//
// The worker gets an empty environment (but TraceEnv, when the host has
// it), no arguments but Args, stdin and
// stdout on /dev/null, its stderr on a pipe whose tail the host keeps, and
// Pdeathsig set to SIGKILL so that it dies with the host. It gets no other
// descriptors than the two protocol pipes and the slot.
//
// One goroutine owns Wait; Exited is closed when it returns.
func Start(opts Options) (*Process, error) {
	path := opts.Path
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("proc: find the current executable: %w", err)
		}
		path = exe
	}
	args := opts.Args
	if args == nil {
		args = []string{WorkerArg}
	}
	if opts.StderrTail == 0 {
		opts.StderrTail = 16 << 10
	}

	var closers []io.Closer
	fail := func(err error) (*Process, error) {
		for _, c := range closers {
			c.Close()
		}
		return nil, err
	}
	toWR, toWW, err := os.Pipe()
	if err != nil {
		return fail(fmt.Errorf("proc: pipe: %w", err))
	}
	closers = append(closers, toWR, toWW)
	fromWR, fromWW, err := os.Pipe()
	if err != nil {
		return fail(fmt.Errorf("proc: pipe: %w", err))
	}
	closers = append(closers, fromWR, fromWW)
	toWSize := growPipe(toWW)
	growPipe(fromWR)
	errR, errW, err := os.Pipe()
	if err != nil {
		return fail(fmt.Errorf("proc: pipe: %w", err))
	}
	closers = append(closers, errR, errW)
	slot, slotF, err := newSlot()
	if err != nil {
		return fail(err)
	}
	closers = append(closers, slotF)

	cmd := &exec.Cmd{
		Path:       path,
		Args:       append([]string{"safepool-worker"}, args...),
		Env:        workerEnv(),
		Stderr:     errW,
		ExtraFiles: []*os.File{toWR, fromWW, slotF},
		SysProcAttr: &syscall.SysProcAttr{
			Pdeathsig: syscall.SIGKILL,
			Setpgid:   true,
		},
	}
	if err := spawn(cmd); err != nil {
		slot.unmap()
		return fail(fmt.Errorf("proc: start worker %s: %w", path, err))
	}
	// The child has its copies; keep only the host ends.
	toWR.Close()
	fromWW.Close()
	errW.Close()
	slotF.Close()

	p := &Process{
		pid:     cmd.Process.Pid,
		cmd:     cmd,
		toW:     toWW,
		toWSize: toWSize,
		fromW:   fromWR,
		reader:  NewSpinReader(fromWR, hostSpin, false),
		slot:    slot,
		stderr:  tail.New(opts.StderrTail),
		exited:  make(chan struct{}),
	}
	p.reader.SetSpin(false)
	go p.wait(errR)
	return p, nil
}

func (p *Process) wait(errR *os.File) {
	drained := make(chan struct{})
	go func() {
		_, _ = io.Copy(p.stderr, errR)
		errR.Close()
		close(drained)
	}()
	ps, err := p.cmd.Process.Wait()
	p.exit = exitFrom(ps, err)
	release()
	<-drained
	close(p.exited)
}

// PID returns the worker's process ID.
func (p *Process) PID() int { return p.pid }

// Reader returns the pipe the worker writes frames to.
func (p *Process) Reader() io.Reader { return p.reader }

// SpinReads turns on or off polling for the worker's next frames before
// parking (see SpinReader). Turn it on when a caller waits for the answer.
func (p *Process) SpinReads(on bool) { p.reader.SetSpin(on) }

// Writer returns the pipe the worker reads frames from.
func (p *Process) Writer() io.Writer { return p.toW }

// Slot returns the shared page where the worker records its running task.
func (p *Process) Slot() *Slot { return p.slot }

// Exited is closed once the process has ended and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Exit says how the process ended. It is only meaningful after Exited is
// closed.
func (p *Process) Exit() Exit {
	<-p.exited
	return p.exit
}

// Stderr returns the tail of the worker's own stderr (not the guest's).
func (p *Process) Stderr() []byte { return p.stderr.Bytes() }

// Kill sends SIGKILL. It is safe to call more than once and after the process
// has ended.
func (p *Process) Kill() {
	p.killOnce.Do(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
		}
	})
}

// CloseInput closes the pipe the worker reads from. A worker treats that as
// an order to exit once its current batch is done.
func (p *Process) CloseInput() error { return p.toW.Close() }

// Release frees the host's resources. Call it once the process has exited;
// it waits for that.
func (p *Process) Release() {
	<-p.exited
	p.relOnce.Do(func() {
		p.toW.Close()
		p.fromW.Close()
		p.slot.unmap()
	})
}

// spawner: every worker is started from one OS thread that stays locked while
// any worker it started is alive. Pdeathsig fires when the *thread* that
// forked the child exits (golang/go#27505), and the Go runtime may retire
// ordinary threads, so starting from a goroutine that hops threads could kill
// a healthy worker. The thread is let go once no worker is left, so an idle
// program has no extra goroutine.
var sp struct {
	mu   sync.Mutex
	reqs chan spawnReq
	live int
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func spawn(cmd *exec.Cmd) error {
	sp.mu.Lock()
	sp.live++
	if sp.reqs == nil {
		sp.reqs = make(chan spawnReq)
		go spawner(sp.reqs)
	}
	reqs := sp.reqs
	sp.mu.Unlock()

	done := make(chan error, 1)
	reqs <- spawnReq{cmd, done}
	if err := <-done; err != nil {
		release()
		return err
	}
	return nil
}

// release is called once per started process, after it is reaped.
func release() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.live--
	if sp.live == 0 && sp.reqs != nil {
		close(sp.reqs)
		sp.reqs = nil
	}
}

func spawner(reqs <-chan spawnReq) {
	runtime.LockOSThread()
	// Returning while locked makes the runtime retire this thread; by then
	// no worker started from it is alive.
	for r := range reqs {
		r.done <- r.cmd.Start()
	}
}

// ErrNotWorker is returned by Child when the process was not started as a
// worker.
var ErrNotWorker = errors.New("proc: not started as a safepool worker (missing descriptors 3-5)")

// TraceEnv names the environment variable that makes every worker write a
// runtime/trace of its life: set on the host to a directory, it is passed
// on to the workers the host starts (the only variable they get), and each
// writes DIR/worker-PID.trace from its handshake until it exits (see
// package sandbox). It is for diagnosing a worker's latency with go tool
// trace; a worker killed by a signal leaves its trace cut short.
const TraceEnv = "SAFEPOOL_WORKER_TRACE"

// workerEnv is a worker's environment: TraceEnv when set, nothing else.
func workerEnv() []string {
	if dir := os.Getenv(TraceEnv); dir != "" {
		return []string{TraceEnv + "=" + dir}
	}
	return []string{}
}
