package enginetest

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/module"
	"github.com/safepool/safepool/pool"
)

// The pool-level cases: what a pool promises, through pool.New, on one
// engine.

// poolStatuses: every status, with its message, through Apply; the killed
// ones are listed.
func poolStatuses(t *testing.T, eng string) {
	p := NewPool(t, "tasks", func(c *pool.Config) {
		c.Engine = eng
		c.Timeout = 500 * time.Millisecond
		c.MemoryLimit = 32 << 20
		c.OutputLimit = 1 << 20
	})
	ctx := context.Background()
	cases := []struct {
		name, fn, in string
		status       pool.Status
		output, err  string
	}{
		{"ok", "square", "12", pool.StatusOK, "144", ""},
		{"error", "fail", "x", pool.StatusError, "", "boom: x"},
		{"panic", "panic", "", pool.StatusError, "", "kaboom"},
		{"trap", "exit", "3", pool.StatusError, "", "exited with code 3"},
		{"memory limit", "memhog", "64", pool.StatusMemoryLimit, "", "memory limit of 32 MiB reached"},
		{"timeout spinning", "spin", "", pool.StatusTimeout, "", "timeout of 500ms"},
		{"timeout asleep", "sleep", "60000", pool.StatusTimeout, "", "timeout of 500ms"},
		{"output cap", "big", "2048", pool.StatusError, "", "over the output cap"},
		{"ok after all that", "square", "5", pool.StatusOK, "25", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			begin := time.Now()
			res, err := p.Apply(ctx, tc.fn, []byte(tc.in))
			require.NoError(t, err)
			require.Equal(t, tc.status, res.Status, res.Error)
			require.Equal(t, tc.output, string(res.Output))
			require.Contains(t, res.Error, tc.err)
			require.NotZero(t, res.Stats.WorkerPID)
			require.Equal(t, int64(32<<20), res.Stats.MemoryLimit)
			if tc.status == pool.StatusTimeout {
				require.Less(t, time.Since(begin), 2*time.Second, "the worker's watchdog, not the host's hang check, must stop it")
			}
		})
	}
	var killed []pool.Status
	for _, kt := range p.KilledTasks() {
		killed = append(killed, kt.Status)
	}
	slices.Sort(killed)
	require.Equal(t, []pool.Status{pool.StatusMemoryLimit, pool.StatusTimeout, pool.StatusTimeout}, killed)
}

// poolMemoryRetry: a task that hits its cap is retried with a larger one.
func poolMemoryRetry(t *testing.T, eng string) {
	p := NewPool(t, "tasks", func(c *pool.Config) {
		c.Engine = eng
		c.MemoryLimit = 32 << 20
		c.OnMemoryLimit = pool.Retry
		c.Retry = pool.RetryPolicy{MaxAttempts: 4, MemoryGrowth: 2, Backoff: time.Millisecond}
	})
	rs, err := p.Map(context.Background(), "memhog", [][]byte{[]byte("8"), []byte("100")})
	require.NoError(t, err)
	require.Equal(t, pool.StatusOK, rs[0].Status, rs[0].Error)
	require.Equal(t, 1, rs[0].Attempts)
	// 100 MiB: 32 → 64 → 128 MiB.
	require.Equal(t, pool.StatusOK, rs[1].Status, rs[1].Error)
	require.Equal(t, 3, rs[1].Attempts)
	require.Equal(t, int64(128<<20), rs[1].Stats.MemoryLimit)
	require.Greater(t, rs[1].Stats.PeakMemory, int64(100<<20))
}

// poolKills: a worker SIGKILLed mid-map costs only its running task, under
// skip and under retry.
func poolKills(t *testing.T, eng string) {
	for _, policy := range []pool.Policy{pool.Skip, pool.Retry} {
		t.Run(policy.String(), func(t *testing.T) {
			k := newKiller(3)
			p := NewPool(t, "tasks", func(c *pool.Config) {
				c.Engine = eng
				c.OnEvent = k.onEvent
				c.KillPolicy = policy
			})
			rs, err := p.Map(context.Background(), "slow_square", Ints(8))
			require.NoError(t, err)
			want := []string{"0", "1", "4", "9", "16", "25", "36", "49"}
			if policy == pool.Skip {
				want[3] = "<killed>"
				require.Contains(t, rs[3].Error, "killed by SIGKILL")
			}
			require.Equal(t, want, Squares(t, rs))
			for i, r := range rs {
				if i != 3 {
					require.Equal(t, 1, r.Attempts, "task %d was not running when the worker died", i)
				}
			}
		})
	}
}

// poolCommandModule: a WASI command runs each task in a fresh instance.
func poolCommandModule(t *testing.T, eng string) {
	p := NewPool(t, "upper", func(c *pool.Config) { c.Engine = eng; c.Timeout = 500 * time.Millisecond })
	rs, err := p.Map(context.Background(), "", [][]byte{[]byte("hello"), []byte("fail"), []byte("spin")})
	require.NoError(t, err)
	require.Equal(t, "HELLO", string(rs[0].Output))
	require.Equal(t, pool.StatusError, rs[1].Status)
	require.Equal(t, "guest exited with code 3", rs[1].Error, "the error is one line")
	require.Contains(t, string(rs[1].Log), "bad input", "the guest's stderr is in the log")
	require.Equal(t, pool.StatusTimeout, rs[2].Status, rs[2].Error)
}

// poolBadStart: a module that cannot start fails pool.New, with what to do.
func poolBadStart(t *testing.T, eng string) {
	t.Run("module needs more than the cap", func(t *testing.T) {
		_, err := pool.New(context.Background(), pool.Config{Engine: eng, Module: testguest.Path(t, "tasks"), Workers: 1, CacheDir: CacheDir(t), MemoryLimit: 1 << 20})
		require.ErrorContains(t, err, "linear memory just to start")
		require.ErrorContains(t, err, "above the memory cap of 1 MiB; raise MemoryLimit (--memory) to at least")
	})
	t.Run("invalid module", func(t *testing.T) {
		b := testguest.Bytes(t, "wsquare")
		_, err := pool.New(context.Background(), pool.Config{Engine: eng, ModuleBytes: b[:len(b)-3], Workers: 1, CacheDir: CacheDir(t)})
		require.ErrorIs(t, err, module.ErrInvalidModule)
	})
}

// NewPool starts a pool of two workers on the fixture called module, with
// the shared test cache, edited by edit, and terminates it when t ends.
func NewPool(t *testing.T, module string, edit func(*pool.Config)) *pool.Pool {
	t.Helper()
	cfg := pool.Config{Module: testguest.Path(t, module), Workers: 2, CacheDir: CacheDir(t)}
	if edit != nil {
		edit(&cfg)
	}
	p, err := pool.New(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Terminate()) })
	return p
}

// Ints returns the inputs "0" … "n-1".
func Ints(n int) [][]byte {
	in := make([][]byte, n)
	for i := range in {
		in[i] = []byte(strconv.Itoa(i))
	}
	return in
}

// Squares checks that rs are in input order and returns their outputs,
// "<status>" for a result that is not ok.
func Squares(t *testing.T, rs []pool.Result) []string {
	t.Helper()
	out := make([]string, len(rs))
	for i, r := range rs {
		require.Equal(t, i, r.Index)
		if r.Status == pool.StatusOK {
			out[i] = string(r.Output)
		} else {
			out[i] = "<" + r.Status.String() + ">"
		}
	}
	return out
}

// killer kills, with a real SIGKILL, the worker that starts the tasks
// whose index is in targets, once per index.
type killer struct {
	mu      sync.Mutex
	targets map[int]bool
}

func newKiller(idx ...int) *killer {
	k := &killer{targets: map[int]bool{}}
	for _, i := range idx {
		k.targets[i] = true
	}
	return k
}

func (k *killer) onEvent(e pool.Event) {
	if e.Kind != pool.EventTaskStart {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.targets[e.Index] {
		delete(k.targets, e.Index)
		_ = syscall.Kill(e.WorkerPID, syscall.SIGKILL)
	}
}
