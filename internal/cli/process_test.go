package cli_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// running is a CLI started by start, which the test can signal while it
// runs.
type running struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	exited         chan struct{} // closed when the process has exited
	err            error         // cmd.Wait's, once exited is closed
	cancel         context.CancelFunc
}

// start starts the CLI with args, reading stdin, and returns at once. The
// process is killed if the test leaves it running.
func start(t *testing.T, stdin io.Reader, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	r := &running{exited: make(chan struct{}), cancel: cancel}
	r.cmd = exec.CommandContext(ctx, bin, args...)
	r.cmd.Env = cliEnv()
	r.cmd.Stdin = stdin
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	require.NoError(t, r.cmd.Start())
	go func() {
		r.err = r.cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.exited
	})
	return r
}

// wait waits for the process to exit and returns how it went.
func (r *running) wait(t *testing.T) outcome {
	t.Helper()
	<-r.exited
	r.cancel()
	o := outcome{stdout: r.stdout.String(), stderr: r.stderr.String()}
	var ee *exec.ExitError
	switch {
	case r.err == nil:
	case errors.As(r.err, &ee) && ee.Exited():
		o.code = ee.ExitCode()
	default:
		require.NoError(t, r.err, "safepool did not exit by itself: %+v", o)
	}
	return o
}

// pid is the CLI's process ID.
func (r *running) pid() int { return r.cmd.Process.Pid }

// waitLines waits, without polling, until the file path has at least n
// whole lines, and fails the test if the process exits first. It watches
// the file's directory with inotify, so that it wakes at every write.
func waitLines(t *testing.T, r *running, path string, n int) {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	require.NoError(t, err)
	events := os.NewFile(uintptr(fd), "inotify") // non-blocking, so reads take deadlines
	defer events.Close()
	_, err = syscall.InotifyAddWatch(fd, filepath.Dir(path), syscall.IN_CREATE|syscall.IN_MODIFY)
	require.NoError(t, err)
	require.NoError(t, events.SetReadDeadline(time.Now().Add(time.Minute)))
	// The process's exit ends the wait too.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-r.exited:
			_ = events.SetReadDeadline(time.Now())
		case <-done:
		}
	}()
	buf := make([]byte, 64<<10)
	enough := func() bool {
		b, _ := os.ReadFile(path) // after the watch is set: no write goes unseen
		return bytes.Count(b, []byte("\n")) >= n
	}
	for !enough() {
		if _, err := events.Read(buf); err != nil {
			if enough() {
				return
			}
			select {
			case <-r.exited:
				t.Fatalf("safepool exited before %s had %d lines: %s", path, n, r.stderr.String())
			default:
			}
			require.NoError(t, err, "%s never had %d lines", path, n)
		}
	}
}

// children lists the child processes of pid, from the children file of
// each of its threads.
func children(t *testing.T, pid int) []int {
	t.Helper()
	files, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	require.NoError(t, err)
	require.NotEmpty(t, files, "no /proc/<pid>/task/*/children: the kernel lacks CONFIG_PROC_CHILDREN, or the process is gone")
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		for _, field := range strings.Fields(string(b)) {
			n, err := strconv.Atoi(field)
			require.NoError(t, err)
			pids = append(pids, n)
		}
	}
	return pids
}
