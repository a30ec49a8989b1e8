package proc_test

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/safepool/safepool/internal/proc"
	"github.com/safepool/safepool/internal/wire"
)

// TestMain doubles as the worker: Start re-executes this test binary with
// proc.WorkerArg, and childMain answers simple commands sent as Fatal frames
// (used here only as a carrier of a string).
func TestMain(m *testing.M) {
	if proc.IsWorker() {
		childMain()
		return
	}
	goleak.VerifyTestMain(m)
}

func childMain() {
	c, err := proc.Child()
	if err != nil {
		os.Stderr.WriteString("child: " + err.Error())
		os.Exit(9)
	}
	r, w := wire.NewReader(c.In), wire.NewWriter(c.Out)
	reply := func(s string) { _ = w.Send(wire.TypeFatal, wire.AppendFatal(nil, &wire.Fatal{Message: s})) }
	for {
		_, p, err := r.Read()
		if err != nil {
			os.Exit(0) // host closed the pipe
		}
		f, _ := wire.DecodeFatal(p)
		cmd, arg, _ := strings.Cut(f.Message, " ")
		switch cmd {
		case "env":
			reply(strings.Join(os.Environ(), ","))
		case "fds":
			ents, _ := os.ReadDir("/proc/self/fd")
			var out []string
			for _, e := range ents {
				l, _ := os.Readlink("/proc/self/fd/" + e.Name())
				out = append(out, e.Name()+"="+l)
			}
			reply(strings.Join(out, " "))
		case "slot":
			id, _ := strconv.ParseUint(arg, 10, 64)
			c.Slot.SetRunning(id, 12345)
			reply("ok")
		case "exit":
			code, _ := strconv.Atoi(arg)
			os.Stderr.WriteString("exiting on request")
			os.Exit(code)
		case "confine":
			if err := proc.Confine(); err != nil {
				reply(err.Error())
			} else {
				reply("ok")
			}
		case "try":
			reply(try(arg))
		case "nnp":
			b, _ := os.ReadFile("/proc/self/status")
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "NoNewPrivs:") {
					reply(strings.TrimSpace(strings.TrimPrefix(l, "NoNewPrivs:")))
				}
			}
		}
	}
}

type conn struct {
	t *testing.T
	p *proc.Process
	r *wire.Reader
	w *wire.Writer
}

func start(t *testing.T) *conn {
	t.Helper()
	p, err := proc.Start(proc.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { p.Kill(); p.Release() })
	return &conn{t: t, p: p, r: wire.NewReader(p.Reader()), w: wire.NewWriter(p.Writer())}
}

func (c *conn) ask(s string) string {
	c.t.Helper()
	require.NoError(c.t, c.w.Send(wire.TypeFatal, wire.AppendFatal(nil, &wire.Fatal{Message: s})))
	typ, p, err := c.r.Read()
	require.NoError(c.t, err)
	require.Equal(c.t, wire.TypeFatal, typ)
	f, err := wire.DecodeFatal(p)
	require.NoError(c.t, err)
	return f.Message
}

func TestHardening(t *testing.T) {
	c := start(t)
	require.Equal(t, "", c.ask("env"), "the worker's environment must be empty")
	// Only stdio, the two protocol pipes and what the Go runtime opens for
	// itself (epoll, its wake-up pipe or eventfd) may be open. The slot's
	// descriptor is closed once mapped; ReadDir holds /proc/self/fd.
	for _, fd := range strings.Fields(c.ask("fds")) {
		num, target, _ := strings.Cut(fd, "=")
		switch {
		case num == "0" || num == "1":
			require.Equal(t, "/dev/null", target, fd)
		case num == "2" || num == "3" || num == "4":
			require.Contains(t, target, "pipe:", fd)
		case strings.HasPrefix(target, "anon_inode:") || strings.HasPrefix(target, "pipe:") ||
			strings.HasPrefix(target, "/proc/") || target == "/dev/null" || target == "" ||
			strings.HasPrefix(target, "/sys/fs/cgroup/"): // the runtime reads its CPU quota
		default:
			t.Fatalf("unexpected descriptor in the worker: %s", fd)
		}
	}
	require.Equal(t, "1", c.ask("nnp"))
}

func TestSlot(t *testing.T) {
	c := start(t)
	id, _ := c.p.Slot().Running()
	require.Zero(t, id)
	require.Equal(t, "ok", c.ask("slot 77"))
	id, at := c.p.Slot().Running()
	require.Equal(t, uint64(77), id)
	require.Equal(t, int64(12345), at)
}

func TestExit(t *testing.T) {
	t.Run("SIGKILL from outside", func(t *testing.T) {
		c := start(t)
		require.NoError(t, syscall.Kill(c.p.PID(), syscall.SIGKILL))
		_, _, err := c.r.Read()
		require.Error(t, err, "the pipe must reach EOF when the worker dies")
		e := c.p.Exit()
		require.True(t, e.Signaled())
		require.Equal(t, syscall.SIGKILL, e.Signal)
		require.Equal(t, "SIGKILL", e.SignalName())
		require.Equal(t, "killed by SIGKILL", e.String())
	})
	t.Run("exit code", func(t *testing.T) {
		c := start(t)
		require.NoError(t, c.w.Send(wire.TypeFatal, wire.AppendFatal(nil, &wire.Fatal{Message: "exit 3"})))
		e := c.p.Exit()
		require.False(t, e.Signaled())
		require.Equal(t, 3, e.Code)
		require.Equal(t, "exited with code 3", e.String())
		require.Equal(t, "exiting on request", string(c.p.Stderr()))
	})
	t.Run("kill twice", func(t *testing.T) {
		c := start(t)
		c.p.Kill()
		c.p.Kill()
		select {
		case <-c.p.Exited():
		case <-time.After(5 * time.Second):
			t.Fatal("worker did not exit after Kill")
		}
		require.Equal(t, syscall.SIGKILL, c.p.Exit().Signal)
	})
	t.Run("closing input ends the worker", func(t *testing.T) {
		c := start(t)
		require.NoError(t, c.p.CloseInput())
		require.Equal(t, 0, c.p.Exit().Code)
	})
}

func TestStartBadPath(t *testing.T) {
	_, err := proc.Start(proc.Options{Path: "/nonexistent/worker"})
	require.ErrorContains(t, err, "proc: start worker /nonexistent/worker")
}

func TestChildOutsideWorker(t *testing.T) {
	// This test process has no descriptor 5 (the slot) unless a test leaked one.
	if _, err := os.Stat("/proc/self/fd/5"); err == nil {
		t.Skip("descriptor 5 is open in the test process")
	}
	_, err := proc.Child()
	require.ErrorIs(t, err, proc.ErrNotWorker)
}
