package enginetest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/hostconn"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/internal/wire"
)

// The worker-level cases: each runs real worker processes on one engine.

func square10000(t *testing.T, eng string) {
	for _, module := range []string{"tasks", "wsquare"} {
		t.Run(module, func(t *testing.T) {
			wk := startWorker(t, eng, module, nil)
			require.Equal(t, wire.KindSDK, wk.Ready().Kind)
			require.Contains(t, wk.Ready().Handlers, "square")
			const n, batch = 10000, 500
			for lo := 0; lo < n; lo += batch {
				tasks := make([]wire.Task, batch)
				for i := range tasks {
					tasks[i] = task("square", strconv.Itoa(lo+i))
				}
				for i, r := range run(t, wk, tasks...) {
					require.Equal(t, wire.StatusOK, r.Status, r.Error)
					v := lo + i
					require.Equal(t, strconv.Itoa(v*v), string(r.Output))
					require.LessOrEqual(t, r.Start, r.End)
					require.NotZero(t, r.PeakMemory)
				}
			}
		})
	}
}

func statuses(t *testing.T, eng string) {
	wk := startWorker(t, eng, "tasks", nil)
	recursionStatus, recursionError := recursion(eng)
	cases := []struct {
		name, fn, in string
		status       wire.Status
		output       string
		errContains  string
	}{
		{"ok", "square", "7", wire.StatusOK, "49", ""},
		{"echo", "echo", "hello", wire.StatusOK, "hello", ""},
		{"returned error", "fail", "x", wire.StatusError, "", "boom: x"},
		{"panic", "panic", "", wire.StatusError, "", "kaboom"},
		{"unknown function", "nope", "", wire.StatusError, "", `unknown function "nope"`},
		{"memory cap", "memhog", "100", wire.StatusMemoryLimit, "", "memory limit of 64 MiB reached"},
		{"under the cap", "memhog", "16", wire.StatusOK, "16", ""},
		{"unbounded recursion", "recurse", "", recursionStatus, "", recursionError},
		{"exit", "exit", "3", wire.StatusError, "", "exited with code 3"},
		{"exit zero", "exit", "0", wire.StatusError, "", "exited with code 0"},
		{"output cap", "big", "2048", wire.StatusError, "", "over the output cap"},
		{"after all that", "square", "9", wire.StatusOK, "81", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := one(t, wk, tc.fn, tc.in)
			require.Equal(t, tc.status, r.Status, "error: %s", r.Error)
			if tc.status == wire.StatusOK {
				require.Equal(t, tc.output, string(r.Output))
				require.Empty(t, r.Error)
			} else {
				require.Empty(t, r.Output)
				require.NotEmpty(t, r.Error)
				require.Contains(t, r.Error, tc.errContains)
				require.NotContains(t, r.Error, "\n", "an error is one line; the rest goes to the log")
			}
		})
	}
}

func memoryLimitThenOK(t *testing.T, eng string) {
	wk := startWorker(t, eng, "tasks", nil)
	rs := run(t, wk, task("memhog", "200"), task("square", "3"))
	require.Equal(t, wire.StatusMemoryLimit, rs[0].Status, rs[0].Error)
	require.Equal(t, wire.StatusOK, rs[1].Status, rs[1].Error)
	require.Equal(t, "9", string(rs[1].Output))

	t.Run("a larger cap for one task", func(t *testing.T) {
		tk := task("memhog", "200")
		tk.MemoryLimit = 512 << 20
		r := run(t, wk, tk)[0]
		require.Equal(t, wire.StatusOK, r.Status, r.Error)
		require.Greater(t, r.PeakMemory, uint64(200<<20))
	})
	t.Run("a non-Go guest growing in a loop", func(t *testing.T) {
		wk := startWorker(t, eng, "wgrow", nil)
		rs := run(t, wk, task("grow", ""), task("ok", ""))
		require.Equal(t, wire.StatusMemoryLimit, rs[0].Status, rs[0].Error)
		require.Equal(t, uint64(testCap), rs[0].PeakMemory)
		require.Equal(t, wire.StatusOK, rs[1].Status, rs[1].Error)
	})
}

func timeouts(t *testing.T, eng string) {
	const timeout = 300 * time.Millisecond
	wk := startWorker(t, eng, "tasks", func(i *wire.Init) { i.Timeout = timeout })
	for _, tc := range []struct{ fn, in string }{{"spin", ""}, {"sleep", "60000"}} {
		t.Run(tc.fn, func(t *testing.T) {
			begin := time.Now()
			r := one(t, wk, tc.fn, tc.in)
			took := time.Since(begin)
			require.Equal(t, wire.StatusTimeout, r.Status, r.Error)
			require.Equal(t, "task ran past its timeout of 300ms and was stopped", r.Error)
			// The slack allows for a loaded machine; a sleep that is not
			// interrupted would take a minute.
			require.Less(t, took, timeout+250*time.Millisecond, "stopped too late")
			require.GreaterOrEqual(t, time.Duration(r.End-r.Start), timeout)
			// The same worker goes on.
			r = one(t, wk, "square", "5")
			require.Equal(t, wire.StatusOK, r.Status, r.Error)
			require.Equal(t, "25", string(r.Output))
		})
	}
}

// timeoutIsPerTaskInABatch: the deadline belongs to each task of a
// batch, not to the batch. Tasks that each stay under the timeout pass
// even when the batch as a whole runs past it, and a task that overruns in
// the middle of a batch is stopped on time, with the tasks after it run.
func timeoutIsPerTaskInABatch(t *testing.T, eng string) {
	const timeout = 400 * time.Millisecond
	wk := startWorker(t, eng, "tasks", func(i *wire.Init) { i.Timeout = timeout })
	require.True(t, exportsBatch(t, "tasks"))
	// 5 × 150 ms = 750 ms, almost twice the timeout.
	var tasks []wire.Task
	for range 5 {
		tasks = append(tasks, task("sleep", "150"))
	}
	for i, r := range run(t, wk, tasks...) {
		require.Equal(t, wire.StatusOK, r.Status, "task %d: %s", i, r.Error)
	}

	begin := time.Now()
	rs := run(t, wk, task("square", "2"), task("sleep", "150"), task("sleep", "60000"), task("square", "3"))
	took := time.Since(begin)
	want := []wire.Status{wire.StatusOK, wire.StatusOK, wire.StatusTimeout, wire.StatusOK}
	for i, r := range rs {
		require.Equal(t, want[i], r.Status, "task %d: %s", i, r.Error)
	}
	require.GreaterOrEqual(t, time.Duration(rs[2].End-rs[2].Start), timeout)
	require.Less(t, took, 150*time.Millisecond+timeout+time.Second, "the sleeping task was not stopped at its deadline")
	require.Equal(t, "9", string(rs[3].Output))

	// A task's deadline that comes before the one the shared timer is set
	// for still fires on time: the timer must be pulled in, not left at the
	// old deadline. The warm instance's timer was last set for its
	// start-up, under a start timeout far longer than the task's.
	wk = startWorker(t, eng, "tasks", func(i *wire.Init) {
		i.Timeout, i.StartTimeout = 100*time.Millisecond, 10*time.Second
	})
	begin = time.Now()
	r := one(t, wk, "sleep", "60000")
	require.Equal(t, wire.StatusTimeout, r.Status, r.Error)
	require.Less(t, time.Since(begin), 2*time.Second, "the short deadline waited for the long one")
}

func killWhileRunning(t *testing.T, eng string) {
	wk := startWorker(t, eng, "tasks", func(i *wire.Init) { i.Events = true })
	spin := task("spin", "")
	require.NoError(t, wk.Send([]wire.Task{task("square", "2"), spin, task("square", "3")}))
	for {
		ev := wk.Recv()
		require.Nil(t, ev.Death)
		if ev.Started == spin.ID {
			break
		}
	}
	require.NoError(t, syscall.Kill(wk.PID(), syscall.SIGKILL))
	var d *hostconn.Death
	for d == nil {
		d = wk.Recv().Death
	}
	require.True(t, d.Exit.Signaled())
	require.Equal(t, "SIGKILL", d.Exit.SignalName())
	require.Equal(t, spin.ID, d.Running, "the running task must be blamed")
	require.NotZero(t, d.Since)
	require.Contains(t, d.Error(), "killed by SIGKILL")
}

func batchEntryPoint(t *testing.T, eng string) {
	wk := startWorker(t, eng, "tasks", nil)
	require.True(t, exportsBatch(t, "tasks"))
	// A trap in the middle of a batch fails only that task; the rest run on
	// a new instance.
	rs := run(t, wk, task("square", "1"), task("fail", "a"), task("recurse", ""), task("square", "4"), task("memhog", "500"), task("square", "5"))
	recursionStatus, _ := recursion(eng)
	want := []wire.Status{wire.StatusOK, wire.StatusError, recursionStatus, wire.StatusOK, wire.StatusMemoryLimit, wire.StatusOK}
	for i, r := range rs {
		require.Equal(t, want[i], r.Status, "task %d: %s", i, r.Error)
	}
	require.Equal(t, "16", string(rs[3].Output))
	require.Equal(t, "25", string(rs[5].Output))
}

// noResult: a guest call that returns without giving its task's result
// fails that task with a message that says so, and the worker goes on.
// Through safepool_batch, the task the guest was on fails, and the tasks
// after it run one by one, through safepool_call.
func noResult(t *testing.T, eng string) {
	m := testguest.SDK() // its safepool_call returns at once
	m.Funcs = append(m.Funcs, testguest.Func{Export: "safepool_batch", Params: []byte{testguest.I32, testguest.I32}})
	p := filepath.Join(t.TempDir(), "m.wasm")
	require.NoError(t, os.WriteFile(p, m.Encode(), 0o644))
	wk, err := hostconn.Start(hostconn.Config{Init: wire.Init{Engine: eng, ModulePath: p, MemoryLimit: testCap, OutputLimit: 1 << 20, LogLimit: 64 << 10}})
	require.NoError(t, err)
	t.Cleanup(func() { wk.Kill(); wk.Release() })
	rs := run(t, wk, task("a", ""), task("b", ""))
	require.Equal(t, wire.StatusError, rs[0].Status)
	require.Equal(t, "guest returned no result (safepool_batch must call safepool.result once per record)", rs[0].Error)
	require.Equal(t, wire.StatusError, rs[1].Status)
	require.Equal(t, "guest returned no result (safepool_call must call safepool.result once)", rs[1].Error)
	require.Empty(t, rs[1].Output)
}

func traps(t *testing.T, eng string) {
	wk := startWorker(t, eng, "wtraps", nil)
	for fn, want := range map[string]string{
		"unreachable": "unreachable",
		"divzero":     "integer divide by zero",
		"overflow":    "stack overflow",
	} {
		t.Run(fn, func(t *testing.T) {
			r := one(t, wk, fn, "")
			require.Equal(t, wire.StatusError, r.Status)
			require.Contains(t, r.Error, want)
		})
	}
}

func guestOutputIsBounded(t *testing.T, eng string) {
	wk := startWorker(t, eng, "tasks", func(i *wire.Init) { i.LogLimit = 4 << 10 })
	r := one(t, wk, "stderr", "1024") // 1 MiB of stderr
	require.Equal(t, wire.StatusOK, r.Status, r.Error)
	require.Len(t, r.Log, 4<<10)
	r = one(t, wk, "stdout", "64")
	require.Equal(t, wire.StatusOK, r.Status, r.Error)
	require.LessOrEqual(t, len(r.Log), 4<<10)
	require.NotEmpty(t, r.Log)
}

func denyByDefault(t *testing.T, eng string) {
	wk := startWorker(t, eng, "tasks", nil)
	r := one(t, wk, "env", "")
	require.Equal(t, wire.StatusOK, r.Status, r.Error)
	require.NotContains(t, string(r.Output), "PATH", "no environment may reach the guest")
	r = one(t, wk, "readfile", "/etc/passwd")
	require.Equal(t, wire.StatusOK, r.Status, r.Error)
	require.NotContains(t, string(r.Output), "root:")
}

func freshInstance(t *testing.T, eng string) {
	wk := startWorker(t, eng, "tasks", func(i *wire.Init) { i.FreshInstance = true })
	for i := range 5 {
		r := one(t, wk, "square", strconv.Itoa(i))
		require.Equal(t, wire.StatusOK, r.Status, r.Error)
		require.Equal(t, strconv.Itoa(i*i), string(r.Output))
	}
}

func commandModule(t *testing.T, eng string) {
	wk := startWorker(t, eng, "upper", func(i *wire.Init) { i.Timeout = 500 * time.Millisecond })
	require.Equal(t, wire.KindCommand, wk.Ready().Kind)
	rs := run(t, wk, task("", "hello"), task("", "fail"), task("", "spin"), task("", "again"))
	require.Equal(t, wire.StatusOK, rs[0].Status, rs[0].Error)
	require.Equal(t, "HELLO", string(rs[0].Output))
	require.Equal(t, wire.StatusError, rs[1].Status)
	require.Equal(t, "guest exited with code 3", rs[1].Error)
	require.Contains(t, string(rs[1].Log), "bad input", "the guest's stderr is in the log")
	require.Equal(t, wire.StatusTimeout, rs[2].Status, rs[2].Error)
	require.Equal(t, "AGAIN", string(rs[3].Output))

	t.Run("hand-written command", func(t *testing.T) {
		wk := startWorker(t, eng, "wcmd", nil)
		r := one(t, wk, "", "")
		require.Equal(t, wire.StatusOK, r.Status, r.Error)
		require.Equal(t, "hi\n", string(r.Output))
	})
}

func badModulesFailAtStart(t *testing.T, eng string) {
	cases := map[string]string{
		"wbadimport": "env.foo",
		"wnoexport":  "neither safepool_abi_version nor _start",
		"wbadsig":    "wrong signature",
		"sdkcmd":     "module: a Go program built without -buildmode=c-shared (it exports _start and the safepool SDK's exports); rebuild it with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared",
	}
	for module, want := range cases {
		t.Run(module, func(t *testing.T) {
			_, err := hostconn.Start(hostconn.Config{Init: wire.Init{Engine: eng, ModulePath: testguest.Path(t, module), MemoryLimit: testCap}})
			require.ErrorIs(t, err, hostconn.ErrStart)
			require.ErrorContains(t, err, want)
		})
	}
	t.Run("not wasm", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "x.wasm")
		require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\necho hi\n"), 0o644))
		_, err := hostconn.Start(hostconn.Config{Init: wire.Init{Engine: eng, ModulePath: p, MemoryLimit: testCap}})
		require.ErrorContains(t, err, "module: not a WebAssembly module: the file does not start with the wasm magic bytes \\0asm; pass a compiled .wasm file")
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := hostconn.Start(hostconn.Config{Init: wire.Init{Engine: eng, ModulePath: "/nonexistent.wasm"}})
		require.ErrorContains(t, err, "read module")
	})
	t.Run("needs more memory than the cap", func(t *testing.T) {
		// The Go guest's initial memory is larger than 1 MiB.
		_, err := hostconn.Start(hostconn.Config{Init: wire.Init{Engine: eng, ModulePath: testguest.Path(t, "tasks"), CacheDir: CacheDir(t), MemoryLimit: 1 << 20}})
		require.ErrorIs(t, err, hostconn.ErrStart)
		require.Regexp(t, `the module needs \d+ KiB of linear memory just to start \(its memory's minimum is \d+ pages\), above the memory cap of 1 MiB; raise MemoryLimit \(--memory\) to at least \d+ KiB$`, err.Error())
	})
}

func damagedCacheRecovers(t *testing.T, eng string) {
	// The hand-written module compiles in milliseconds even under -race.
	dir := t.TempDir()
	wk := startWorker(t, eng, "wsquare", func(i *wire.Init) { i.CacheDir = dir })
	require.Equal(t, "4", string(one(t, wk, "square", "2").Output))
	// Damage every cache file: flip bytes in the middle and truncate.
	n := 0
	require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		for i := len(b) / 3; i < len(b)/3+256 && i < len(b); i++ {
			b[i] ^= 0xff
		}
		n++
		return os.WriteFile(p, b[:len(b)*2/3], 0o644)
	}))
	require.NotZero(t, n, "the worker wrote nothing to the cache")
	wk = startWorker(t, eng, "wsquare", func(i *wire.Init) { i.CacheDir = dir })
	r := one(t, wk, "square", "3")
	require.Equal(t, wire.StatusOK, r.Status, r.Error)
	require.Equal(t, "9", string(r.Output))
}

func resultsAreIDMatched(t *testing.T, eng string) {
	wk := startWorker(t, eng, "tasks", nil)
	var tasks []wire.Task
	for i := range 50 {
		tasks = append(tasks, task("echo", fmt.Sprint("m", i)))
	}
	for i, r := range run(t, wk, tasks...) {
		require.Equal(t, "m"+strconv.Itoa(i), string(r.Output))
		require.True(t, strings.HasPrefix(string(r.Output), "m"))
	}
}
