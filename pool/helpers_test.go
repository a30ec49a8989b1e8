package pool_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/safepool/safepool/internal/enginetest"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/pool"
)

// squareWasm is the module the examples run, which have no testing.TB to
// ask testguest.Path with: the wchaos fixture, whose handlers are square
// (ASCII decimal in, its square out) and slow_square (the same after 30
// ms). Its workers start in milliseconds.
var squareWasm string

func TestMain(m *testing.M) {
	var err error
	if squareWasm, err = testguest.Build("wchaos"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m)
}

// The helpers the conformance suite shares: the test cache, a pool that
// terminates with its test, the inputs "0" … "n-1", and their outputs.
var (
	cacheDir = enginetest.CacheDir
	ints     = enginetest.Ints
	squares  = enginetest.Squares
)

// clusterTarget, when set, is the Config.Cluster of every pool newPool
// makes that does not choose its own: TestEmbedded runs the suites on
// "embedded" with it.
var clusterTarget string

// newPool is a pool that terminates with its test, on clusterTarget.
func newPool(t *testing.T, module string, edit func(*pool.Config)) *pool.Pool {
	t.Helper()
	return enginetest.NewPool(t, module, func(c *pool.Config) {
		c.Cluster = clusterTarget
		if edit != nil {
			edit(c)
		}
	})
}

// killer kills, with a real SIGKILL, the worker that starts the tasks
// whose index is in targets, once per index.
type killer struct {
	fn      string // only tasks of this function, when set
	mu      sync.Mutex
	targets map[int]bool
	killed  []int
}

func newKiller(idx ...int) *killer {
	k := &killer{targets: map[int]bool{}}
	for _, i := range idx {
		k.targets[i] = true
	}
	return k
}

func (k *killer) onEvent(e pool.Event) {
	if e.Kind != pool.EventTaskStart || (k.fn != "" && e.Func != k.fn) {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.targets[e.Index] {
		delete(k.targets, e.Index)
		k.killed = append(k.killed, e.Index)
		_ = syscall.Kill(e.WorkerPID, syscall.SIGKILL)
	}
}

// children lists this process's child processes.
func children(t testing.TB) []string {
	var out []string
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err == nil {
			out = append(out, strings.Fields(string(b))...)
		}
	}
	return out
}

func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// eventually waits for cond, failing the test after d.
func eventually(t *testing.T, d time.Duration, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, d, 10*time.Millisecond, msg)
}

// taskStarts lets a test wait until tasks are running, instead of sleeping
// and hoping they are: its onEvent goes in Config.OnEvent.
type taskStarts chan int

func newTaskStarts() taskStarts { return make(taskStarts, 1024) }

func (s taskStarts) onEvent(e pool.Event) {
	if e.Kind == pool.EventTaskStart {
		select {
		case s <- e.Index:
		default:
		}
	}
}

// wait waits until n tasks have started.
func (s taskStarts) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-s:
		case <-time.After(time.Minute):
			t.Fatal("tasks did not start")
		}
	}
}
