package proc

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Exit describes how a worker process ended.
type Exit struct {
	// Signal is the signal that killed the process, or 0.
	Signal syscall.Signal
	// Code is the exit code when the process exited by itself, or -1.
	Code int
	// Err is set when the process could not be waited for.
	Err error
}

// Signaled reports whether a signal ended the process.
func (e Exit) Signaled() bool { return e.Signal != 0 }

// SignalName returns the signal's name, such as "SIGKILL", or "".
func (e Exit) SignalName() string {
	if e.Signal == 0 {
		return ""
	}
	if n := unix.SignalName(e.Signal); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(e.Signal))
}

// String says how the process ended, such as "killed by SIGKILL" or
// "exited with code 2".
func (e Exit) String() string {
	switch {
	case e.Err != nil:
		return "lost: " + e.Err.Error()
	case e.Signal != 0:
		return "killed by " + e.SignalName()
	default:
		return fmt.Sprintf("exited with code %d", e.Code)
	}
}

func exitFrom(ps *os.ProcessState, err error) Exit {
	if ps == nil {
		return Exit{Code: -1, Err: err}
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok {
		return Exit{Code: ps.ExitCode()}
	}
	if ws.Signaled() {
		return Exit{Signal: ws.Signal(), Code: -1}
	}
	return Exit{Code: ws.ExitStatus()}
}
