package pool_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/pool"
)

// helperHostEnv, when set to a module path, turns TestHelperHost into a
// host process for TestHostKilled.
const helperHostEnv = "SAFEPOOL_TEST_HELPER_HOST"

// TestHelperHost is not a test of its own: TestHostKilled runs the test
// binary again with helperHostEnv set, and then this starts a pool, prints
// its workers' pids and waits to be killed.
func TestHelperHost(t *testing.T) {
	module := os.Getenv(helperHostEnv)
	if module == "" {
		t.Skip("a helper process for TestHostKilled")
	}
	p, err := pool.New(context.Background(), pool.Config{Module: module, Workers: 3, CacheDir: cacheDir(t)})
	require.NoError(t, err)
	_, err = p.Map(context.Background(), "square", ints(30))
	require.NoError(t, err)
	fmt.Printf("workers %s\n", strings.Join(children(t), " "))
	time.Sleep(time.Hour) // until killed
}

// TestHostKilled SIGKILLs a host process that runs a pool and checks that
// every worker is gone within a second: no orphan keeps running.
func TestHostKilled(t *testing.T) {
	// Become the subreaper: the host's orphans are then reparented to this
	// process, which can see them die and reap them, instead of to init.
	require.NoError(t, unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)

	host := exec.Command(os.Args[0], "-test.run=^TestHelperHost$", "-test.count=1")
	host.Env = append(os.Environ(), helperHostEnv+"="+testguest.Path(t, "wsquare"))
	stderr, err := os.CreateTemp(t.TempDir(), "host-stderr")
	require.NoError(t, err)
	defer stderr.Close()
	host.Stderr = stderr
	hostStderr := func() string { b, _ := os.ReadFile(stderr.Name()); return string(b) }
	out, err := host.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, host.Start())
	lines := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if w, ok := strings.CutPrefix(s.Text(), "workers "); ok {
				lines <- w
			}
		}
		close(lines)
	}()
	var pids []int
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatalf("the host exited early: %s", hostStderr())
		}
		for _, f := range strings.Fields(l) {
			pid, err := strconv.Atoi(f)
			require.NoError(t, err)
			pids = append(pids, pid)
		}
	case <-time.After(60 * time.Second):
		_ = host.Process.Kill()
		t.Fatalf("the host printed no workers: %s", hostStderr())
	}
	require.Len(t, pids, 3, "the host's workers")
	for _, pid := range pids {
		require.True(t, alive(pid), "worker %d is not running before the kill", pid)
	}

	require.NoError(t, host.Process.Signal(syscall.SIGKILL))
	killed := time.Now()
	_ = host.Wait()
	for _, pid := range pids {
		for alive(pid) {
			if time.Since(killed) > time.Second {
				t.Fatalf("worker %d still runs %s after its host was killed", pid, time.Since(killed))
			}
			time.Sleep(5 * time.Millisecond)
		}
		// Reap it: the host's exit reparented it to this process before
		// host.Wait returned, so a blocking wait returns at once (or with
		// ECHILD if it is not ours).
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil)
	}
	t.Logf("all %d workers gone %s after the host was killed", len(pids), time.Since(killed))
}

// alive reports whether pid runs: it exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

// TestNoLeftovers: after Close or Terminate, with work in flight and workers
// killed along the way, no process (zombies included), descriptor or
// goroutine is left (goroutines are checked by goleak in TestMain).
func TestNoLeftovers(t *testing.T) {
	before := children(t)
	fds := openFDs(t)
	for _, stop := range []string{"Close", "Terminate"} {
		t.Run(stop, func(t *testing.T) {
			var (
				mu   sync.Mutex
				pids []int
			)
			k := newKiller(5, 17)
			starts := newTaskStarts()
			p, err := pool.New(context.Background(), pool.Config{Module: testguest.Path(t, "wchaos"), Workers: 3, CacheDir: cacheDir(t),
				OnEvent: func(e pool.Event) {
					k.onEvent(e)
					starts.onEvent(e)
					if e.Kind == pool.EventWorkerStart {
						mu.Lock()
						pids = append(pids, e.WorkerPID)
						mu.Unlock()
					}
				}})
			require.NoError(t, err)
			m, err := p.MapAsync(context.Background(), "slow_square", ints(30))
			require.NoError(t, err)
			starts.wait(t, 3) // work is in flight on every worker
			if stop == "Close" {
				require.NoError(t, p.Close())
				_, err := m.Wait(context.Background())
				require.NoError(t, err)
			} else {
				require.NoError(t, p.Terminate())
			}
			mu.Lock()
			defer mu.Unlock()
			require.GreaterOrEqual(t, len(pids), 3)
			for _, pid := range pids {
				_, err := os.Stat("/proc/" + strconv.Itoa(pid))
				require.True(t, os.IsNotExist(err), "worker %d was not reaped", pid)
			}
		})
	}
	require.ElementsMatch(t, before, children(t))
	require.Equal(t, fds, openFDs(t))
}

// TestDamagedCacheRecoversInPool damages the compilation cache in the way
// its checksum cannot see (the table of function offsets) and starts a
// pool on it.
func TestDamagedCacheRecoversInPool(t *testing.T) {
	dir := t.TempDir()
	p, err := pool.New(context.Background(), pool.Config{Module: testguest.Path(t, "wsquare"), Workers: 1, CacheDir: dir})
	require.NoError(t, err)
	require.NoError(t, p.Close())
	n := 0
	require.NoError(t, filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		// Header: "WAZEVO", a version length byte, the version, a u32
		// function count; then one u64 offset per function.
		if len(b) < 8 || string(b[:6]) != "WAZEVO" {
			return nil
		}
		off := 7 + int(b[6])
		count := int(binary.LittleEndian.Uint32(b[off:]))
		for i := range count {
			binary.LittleEndian.PutUint64(b[off+4+8*i:], 1<<40)
		}
		n++
		return os.WriteFile(path, b, 0o644)
	}))
	require.NotZero(t, n, "no cache file to damage")
	p, err = pool.New(context.Background(), pool.Config{Module: testguest.Path(t, "wsquare"), Workers: 2, CacheDir: dir})
	require.NoError(t, err, "a damaged cache must not stop a pool from starting")
	defer p.Terminate()
	rs, err := p.Map(context.Background(), "square", ints(10))
	require.NoError(t, err)
	for i, r := range rs {
		require.Equal(t, strconv.Itoa(i*i), string(r.Output), r.Error)
	}
}

// TestOutsideKillsAtStart: workers SIGKILLed from outside while they start
// (an operator, the OOM killer) are not the module's fault. Eight in a row,
// well within StartGiveUp, must not open the restart breaker.
func TestOutsideKillsAtStart(t *testing.T) {
	// The worker command waits a little before it becomes the worker, so
	// that the test can kill it before its handshake.
	exe, err := os.Executable()
	require.NoError(t, err)
	script := filepath.Join(t.TempDir(), "worker.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nsleep 0.2\nexec "+exe+" __safepool_worker__\n"), 0o755))
	p := newPool(t, "wsquare", func(c *pool.Config) { c.Workers = 1; c.WorkerCommand = []string{script} })

	seen := map[string]bool{}
	kills := 0
	deadline := time.Now().Add(30 * time.Second)
	for kills < 8 && time.Now().Before(deadline) {
		for _, pid := range children(t) {
			if seen[pid] {
				continue
			}
			seen[pid] = true
			n, _ := strconv.Atoi(pid)
			if syscall.Kill(n, syscall.SIGKILL) == nil {
				kills++
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	require.Equal(t, 8, kills, "too few workers started to be killed: did the breaker open?")
	rs, err := p.Map(context.Background(), "square", ints(5))
	require.NoError(t, err, "outside kills opened the breaker")
	for i, r := range rs {
		require.Equal(t, strconv.Itoa(i*i), string(r.Output))
	}
}
