package main_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
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
