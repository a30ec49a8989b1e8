package cli_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
)

// The tests in this file show that each flag that configures the pool
// reaches it: each would fail if the flag were parsed and dropped.

func TestRunMaxTasksPerWorker(t *testing.T) {
	t.Parallel()
	pids := func(flags ...string) map[int]bool {
		stats := filepath.Join(t.TempDir(), "stats.jsonl")
		o := cli(t, numbers(4), append([]string{"run", "--module", tasks(t), "--func", "square", "--workers", "1", "--stats", stats}, flags...)...)
		require.Equal(t, 0, o.code, o.stderr)
		requireSquares(t, o.stdout, 4)
		seen := map[int]bool{}
		for _, s := range lines[statsRecord](t, readFile(t, stats)) {
			seen[s.WorkerPID] = true
		}
		return seen
	}
	require.Len(t, pids(), 1, "one worker runs every task")
	// The pool recycles a worker after the batch in which it reached its
	// budget, so a worker may run more tasks than that; it does recycle.
	require.Greater(t, len(pids("--max-tasks-per-worker", "1")), 1, "workers are recycled")
}

func TestRunOutputLimit(t *testing.T) {
	t.Parallel()
	o := cli(t, "1\n4\n", "run", "--module", tasks(t), "--func", "big", "--workers", "1", "--output-limit", "2KiB")
	require.Equal(t, 0, o.code, o.stderr)
	rs := records(t, o.stdout)
	require.Len(t, rs, 2)
	require.Equal(t, "ok", rs[0].Status)
	require.Equal(t, "error", rs[1].Status)
	require.Contains(t, *rs[1].Error, "output is 4 KiB, over the output cap of 2 KiB")
}

func TestRunOnError(t *testing.T) {
	t.Parallel()
	t.Run("skip, the default", func(t *testing.T) {
		t.Parallel()
		o := cli(t, "1\n\"x\"\n3\n", "run", "--module", tasks(t), "--func", "square", "--workers", "1")
		require.Equal(t, 0, o.code, o.stderr)
		rs := records(t, o.stdout)
		require.Equal(t, []string{"ok", "error", "ok"}, []string{rs[0].Status, rs[1].Status, rs[2].Status})
	})
	t.Run("abort", func(t *testing.T) {
		t.Parallel()
		o := cli(t, "1\n\"x\"\n3\n", "run", "--module", tasks(t), "--func", "square", "--workers", "1", "--on-error", "abort")
		require.Equal(t, 1, o.code, o.stderr)
		require.Contains(t, o.stderr, `safepool: run aborted: line 2 (input "x") ended with error after 1 attempt(s)`)
		require.Contains(t, o.stderr, "--on-error skip goes on past failed tasks and --on-error retry runs them again")
		rs := records(t, o.stdout)
		require.Len(t, rs, 2, "the output ends with the task that aborted")
		require.Equal(t, "error", rs[1].Status)
	})
	t.Run("retry", func(t *testing.T) {
		t.Parallel()
		o := cli(t, "1\n", "run", "--module", tasks(t), "--func", "fail", "--on-error", "retry", "--retries", "3")
		require.Equal(t, 0, o.code, o.stderr)
		rs := records(t, o.stdout)
		require.Equal(t, "error", rs[0].Status)
		require.Equal(t, 3, rs[0].Attempts)
		require.Contains(t, *rs[0].Error, "boom: 1; gave up after 3 attempts")
	})
}

// TestRunFreshInstance: memhog grows the instance's linear memory, which
// never shrinks, so a task after it on the same instance reports that
// peak; with --fresh-instance it starts small.
func TestRunFreshInstance(t *testing.T) {
	t.Parallel()
	peak := func(flags ...string) int64 {
		stats := filepath.Join(t.TempDir(), "stats.jsonl")
		o := cli(t, "40\n1\n", append([]string{"run", "--module", tasks(t), "--func", "memhog", "--workers", "1", "--stats", stats}, flags...)...)
		require.Equal(t, 0, o.code, o.stderr)
		ss := lines[statsRecord](t, readFile(t, stats))
		require.Len(t, ss, 2)
		require.Equal(t, ss[0].WorkerPID, ss[1].WorkerPID, "one worker ran both")
		return ss[1].PeakMemory
	}
	require.Greater(t, peak(), int64(40<<20), "the second task shares the first one's instance")
	require.Less(t, peak("--fresh-instance"), int64(16<<20), "the second task has an instance of its own")
}

func TestRunStartTimeout(t *testing.T) {
	t.Parallel()
	o := cli(t, "1\n", "run", "--module", tasks(t), "--func", "square", "--start-timeout", "1ms")
	require.Equal(t, 1, o.code, "a start-up that is too slow is not a bad module: %s", o.stderr)
	require.Contains(t, o.stderr, "workers did not start within --start-timeout (1ms); raise it if the machine is slow or busy")
	require.NotContains(t, o.stderr, "cannot run")
	require.Empty(t, o.stdout)
}

// TestRunOvercommit asks for one worker more than the machine's available
// memory holds at a 4 GiB cap: refused without --overcommit, started with
// it (the caps are only reserved, never touched, by wsquare).
func TestRunOvercommit(t *testing.T) {
	t.Parallel()
	fit := memAvailable(t) / (4<<30 + 40<<20)
	n := int(fit) + 2 // a margin, as MemAvailable moves between readings
	if n > 12 {
		t.Skipf("the machine's memory holds %d workers at a 4 GiB cap; too many to start for a test", fit)
	}
	args := []string{"run", "--module", testguest.Path(t, "wsquare"), "--func", "square", "--workers", strconv.Itoa(n), "--memory", "4GiB"}
	o := cli(t, "3\n", args...)
	require.Equal(t, 2, o.code, o.stderr)
	require.Contains(t, o.stderr, fmt.Sprintf("Workers+Spares is %d", n))
	require.Contains(t, o.stderr, "set Overcommit (--overcommit) to start them anyway")

	o = cli(t, "3\n", append(args, "--overcommit")...)
	require.Equal(t, 0, o.code, o.stderr)
	require.Equal(t, "9", string(records(t, o.stdout)[0].Output))
}

// memAvailable reads MemAvailable from /proc/meminfo, in bytes.
func memAvailable(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/meminfo")
	require.NoError(t, err)
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no MemAvailable in /proc/meminfo")
	return 0
}

// TestRunWorkersZero: --workers 0 is the default, one worker per CPU.
func TestRunWorkersZero(t *testing.T) {
	t.Parallel()
	o := cli(t, numbers(3), "run", "--module", tasks(t), "--func", "square", "--workers", "0")
	require.Equal(t, 0, o.code, o.stderr)
	requireSquares(t, o.stdout, 3)
}

// TestRunCacheWarning: a compilation cache that cannot be written costs
// speed, not correctness; the pool's warning is printed once.
func TestRunCacheWarning(t *testing.T) {
	t.Parallel()
	notDir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o644))
	wsquare := testguest.Path(t, "wsquare")
	o := cli(t, "3\n4\n", "run", "--module", wsquare, "--func", "square", "--workers", "2", "--cache-dir", filepath.Join(notDir, "cache"))
	require.Equal(t, 0, o.code, o.stderr)
	require.Len(t, records(t, o.stdout), 2)
	require.Equal(t, 1, strings.Count(o.stderr, "safepool: warning: pool: the compilation cache "), o.stderr)
	require.Contains(t, o.stderr, "cannot be written")

	o = cli(t, "3\n", "run", "--module", wsquare, "--func", "square", "--cache-dir", t.TempDir())
	require.Equal(t, 0, o.code, o.stderr)
	require.Empty(t, o.stderr)
}

// TestRunBase64 carries bytes that are not UTF-8 (and NULs, new lines and
// nothing at all) in and out unchanged, and writes a killed task's input
// in the form it came in, so that it can be run again.
func TestRunBase64(t *testing.T) {
	t.Parallel()
	inputs := [][]byte{{0xff, 0xfe, 0x00, 0x80}, []byte("plain"), {}, []byte("new\nline\r\n"), {0xc3, 0x28}}
	var in strings.Builder
	for _, b := range inputs {
		fmt.Fprintf(&in, "%q\n", base64.StdEncoding.EncodeToString(b))
	}
	o := cli(t, in.String(), "run", "--module", tasks(t), "--func", "echo", "--encoding", "base64")
	require.Equal(t, 0, o.code, o.stderr)
	rs := records(t, o.stdout)
	require.Len(t, rs, len(inputs))
	for i, r := range rs {
		require.Equal(t, "ok", r.Status, *r.Error)
		var s string
		require.NoError(t, json.Unmarshal(r.Output, &s), "the output is a JSON string")
		got, err := base64.StdEncoding.DecodeString(s)
		require.NoError(t, err)
		require.Equal(t, inputs[i], got, "record %d", i)
	}

	killed := filepath.Join(t.TempDir(), "killed.jsonl")
	o = cli(t, `"NjQ="`+"\n", "run", "--module", tasks(t), "--func", "memhog", "--memory", "16MiB", "--encoding", "base64", "--killed", killed)
	require.Equal(t, 0, o.code, o.stderr)
	ks := lines[killedRecord](t, readFile(t, killed))
	require.Len(t, ks, 1)
	require.Equal(t, `"NjQ="`, string(ks[0].Input), "base64 of 64, as the line had it")
}
