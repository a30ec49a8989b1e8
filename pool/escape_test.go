package pool_test

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/pool"
)

// WASI errno values (wasi_snapshot_preview1).
const (
	wasiSuccess = "0"
	wasiEBADF   = "8"
)

// TestEscapeAttempts: an untrusted guest tries to reach outside the sandbox
// through every door WASI has; each is shut.
func TestEscapeAttempts(t *testing.T) {
	p := newPool(t, "wescape", nil)
	ctx := context.Background()
	try := func(fn string, in ...byte) string {
		t.Helper()
		r, err := p.Apply(ctx, fn, in)
		require.NoError(t, err)
		require.Equal(t, pool.StatusOK, r.Status, "%s: %s", fn, r.Error)
		return string(r.Output)
	}
	// The worker's own descriptors 3 and 4 carry the protocol, 5 was the
	// slot: the guest has no such descriptors, whatever the process has.
	for _, fd := range []byte{3, 4, 5, 6, 10, 100, 255} {
		require.Equal(t, wasiEBADF, try("write", fd), "fd_write to fd %d", fd)
		require.Equal(t, wasiEBADF, try("read", fd), "fd_read from fd %d", fd)
		require.Equal(t, wasiEBADF, try("open", fd), "path_open under fd %d", fd)
		require.Equal(t, wasiEBADF, try("prestat", fd), "fd %d is no preopened directory", fd)
		require.Equal(t, wasiEBADF, try("readdir", fd), "fd_readdir on fd %d", fd)
		require.NotEqual(t, wasiSuccess, try("sock", fd), "sock_accept on fd %d", fd)
	}
	// stdio exists, but is no way out: stdout and stderr go to the task's
	// log, stdin is empty.
	require.Equal(t, wasiSuccess, try("write", 1))
	require.Equal(t, wasiSuccess, try("write", 2))
	require.Equal(t, wasiSuccess, try("read", 0))
	require.NotEqual(t, wasiSuccess, try("sock", 0))
	require.Equal(t, "0 0", try("env"), "no environment variables")
	require.Equal(t, "0 0", try("args"), "no arguments")

	t.Run("Go guest", func(t *testing.T) {
		p := newPool(t, "tasks", nil)
		r, err := p.Apply(ctx, "env", nil)
		require.NoError(t, err)
		var env struct{ Env, Args []string }
		require.NoError(t, json.Unmarshal(r.Output, &env))
		require.Empty(t, env.Env)
		require.LessOrEqual(t, len(env.Args), 1, "at most a program name: %q", env.Args)
		// Files the worker process itself can read: the module, the host's
		// own files. The guest sees no file system at all.
		for _, path := range []string{"/etc/passwd", testguest.Path(t, "tasks"), "/proc/self/environ", "."} {
			r, err := p.Apply(ctx, "readfile", []byte(path))
			require.NoError(t, err)
			var got struct {
				Content      string   `json:"content"`
				ReadError    string   `json:"read_error"`
				Entries      []string `json:"entries"`
				ReadDirError string   `json:"readdir_error"`
			}
			require.NoError(t, json.Unmarshal(r.Output, &got))
			require.Empty(t, got.Content, path)
			require.NotEmpty(t, got.ReadError, path)
			require.Empty(t, got.Entries, "the root directory lists nothing")
			require.NotEmpty(t, got.ReadDirError, "the root directory cannot be read")
		}
	})
}

// TestWorkerIsConfined checks the live worker processes of a pool: no new
// privileges, and a seccomp filter (TestConfine in internal/proc shows what
// that filter denies: exec, fork, sockets, signals to others, ptrace).
func TestWorkerIsConfined(t *testing.T) {
	p := newPool(t, "wsquare", nil)
	rs, err := p.Map(context.Background(), "square", ints(8))
	require.NoError(t, err)
	pids := map[int]bool{}
	for _, r := range rs {
		pids[r.Stats.WorkerPID] = true
	}
	for pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		require.NoError(t, err)
		status := string(b)
		require.Contains(t, status, "NoNewPrivs:\t1", "worker %d", pid)
		if !strings.Contains(status, "Seccomp:") {
			t.Skip("this kernel reports no seccomp state")
		}
		require.Contains(t, status, "Seccomp:\t2", "worker %d runs without a seccomp filter", pid)
		env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		require.NoError(t, err)
		require.Empty(t, env, "worker %d has an environment", pid)
	}
}
