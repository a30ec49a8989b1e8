package proc_test

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// try makes one system call that the worker's filter is about, in the child,
// and says how it went: "ok", or the error.
func try(what string) string {
	errText := func(err error) string {
		if err == nil {
			return "ok"
		}
		return err.Error()
	}
	switch what {
	case "exec":
		// Replaces the process if it is allowed: the host then sees no reply.
		return errText(syscall.Exec("/bin/true", []string{"true"}, nil))
	case "os/exec":
		return errText(exec.Command("/bin/true").Run())
	case "fork":
		pid, _, errno := syscall.RawSyscall(syscall.SYS_FORK, 0, 0, 0)
		if errno == 0 && pid == 0 {
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0) // the child, if the filter failed
		}
		return errText(errnoErr(errno))
	case "clone":
		// A new process (no CLONE_THREAD), the way fork does it.
		pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
		if errno == 0 && pid == 0 {
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
		}
		return errText(errnoErr(errno))
	case "clone3":
		_, _, errno := syscall.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
		return errText(errnoErr(errno))
	case "socket":
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err == nil {
			syscall.Close(fd)
		}
		return errText(err)
	case "unix socket":
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		if err == nil {
			syscall.Close(fds[0])
			syscall.Close(fds[1])
		}
		return errText(err)
	case "ptrace":
		return errText(syscall.PtraceAttach(os.Getppid()))
	case "signal parent":
		return errText(syscall.Kill(os.Getppid(), 0)) // signal 0 only checks
	case "signal group":
		return errText(syscall.Kill(0, 0))
	case "signal self":
		return errText(syscall.Kill(os.Getpid(), 0))
	case "raise limit":
		var lim unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return "getrlimit: " + err.Error()
		}
		return errText(unix.Setrlimit(unix.RLIMIT_NOFILE, &lim))
	case "prlimit":
		var lim unix.Rlimit
		if err := unix.Prlimit(0, unix.RLIMIT_AS, nil, &lim); err != nil {
			return "prlimit get: " + err.Error()
		}
		return errText(unix.Prlimit(0, unix.RLIMIT_AS, &lim, nil))
	case "unshare":
		return errText(unix.Unshare(unix.CLONE_NEWNS))
	case "threads":
		// Force new OS threads: each locked goroutine blocks its thread.
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				time.Sleep(50 * time.Millisecond)
			})
		}
		wg.Wait()
		return fmt.Sprintf("ok %s", statusField("Threads"))
	case "status":
		return statusField("Seccomp") + " " + statusField("Seccomp_filters")
	}
	return "unknown: " + what
}

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func statusField(name string) string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func TestConfine(t *testing.T) {
	c := start(t)
	// Before: everything works, so that the checks below test the filter
	// and not the machine.
	require.Equal(t, "ok", c.ask("try signal parent"))
	require.Equal(t, "ok", c.ask("try raise limit"))

	require.Equal(t, "ok", c.ask("confine"))
	require.Equal(t, "2 1", c.ask("try status"), "Seccomp: 2 (filter mode), one filter")
	eperm := syscall.EPERM.Error()
	denied := map[string]string{
		"exec":          eperm,
		"os/exec":       eperm,
		"fork":          eperm,
		"clone":         eperm,
		"clone3":        syscall.ENOSYS.Error(),
		"socket":        eperm,
		"unix socket":   eperm,
		"ptrace":        eperm,
		"signal parent": eperm,
		"signal group":  eperm,
		"raise limit":   eperm,
		"prlimit":       eperm,
		"unshare":       eperm,
	}
	for what, want := range denied {
		t.Run(what, func(t *testing.T) {
			require.Contains(t, c.ask("try "+what), want)
		})
	}
	// What the worker needs still works: threads, signals to itself, reading
	// its limits.
	require.Equal(t, "ok", c.ask("try signal self"))
	require.True(t, strings.HasPrefix(c.ask("try threads"), "ok "))
	require.Equal(t, "1", c.ask("nnp"))
	// The process is intact: it answers and exits cleanly when told.
	require.NoError(t, c.p.CloseInput())
	require.Equal(t, 0, c.p.Exit().Code)
	require.Empty(t, children(), "the child started nothing")
}

// children lists this process's child processes.
func children() []string {
	var out []string
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, tk := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + tk.Name() + "/children")
		if err == nil {
			out = append(out, strings.Fields(string(b))...)
		}
	}
	return out
}
