package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
)

func TestRunKeepsInputOrder(t *testing.T) {
	t.Parallel()
	o := cli(t, numbers(200), "run", "--module", tasks(t), "--func", "square", "--workers", "2", "--spares", "1")
	require.Equal(t, 0, o.code, o.stderr)
	rs := records(t, o.stdout)
	require.Len(t, rs, 200)
	for i, r := range rs {
		require.Equal(t, "ok", r.Status)
		require.Equal(t, strconv.Itoa(i*i), string(r.Output))
		require.Equal(t, "", *r.Error)
		require.Equal(t, 1, r.Attempts)
	}
	require.Empty(t, o.stderr, "no progress or summary when stderr is not a terminal")
}

// TestRunStatuses runs one task per status the CLI can get from the module
// alone; TestKillWorkerFromOutside covers killed.
func TestRunStatuses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		fn     string
		input  string
		flags  []string
		status string
		output string // the exact output, when set
		error  string // a part of the error
	}{
		{name: "ok", fn: "square", input: "7", status: "ok", output: "49"},
		{name: "error for a string input", fn: "fail", input: `"x"`, status: "error", output: "null", error: `boom: "x"`},
		{name: "non-JSON output becomes a string", fn: "big", input: "1", status: "ok", output: strconv.Quote(string(make1KiB()))},
		{name: "JSON output stays a value", fn: "echo", input: `{"a":[1,2]}`, status: "ok", output: `{"a":[1,2]}`},
		{name: "error", fn: "fail", input: "1", status: "error", output: "null", error: "boom: 1"},
		{name: "panic", fn: "panic", input: "1", status: "error", output: "null", error: "kaboom"},
		{name: "memory_limit", fn: "memhog", input: "64", flags: []string{"--memory", "16MiB"}, status: "memory_limit", output: "null", error: "memory limit of 16 MiB reached"},
		{name: "timeout", fn: "spin", input: "1", flags: []string{"--timeout", "300ms"}, status: "timeout", output: "null", error: "300ms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"run", "--module", tasks(t), "--func", tc.fn, "--workers", "1"}, tc.flags...)
			o := cli(t, tc.input+"\n", args...)
			require.Equal(t, 0, o.code, "skipped and failed tasks still complete the run: %s", o.stderr)
			rs := records(t, o.stdout)
			require.Len(t, rs, 1)
			require.Equal(t, tc.status, rs[0].Status)
			if tc.output != "" {
				require.Equal(t, tc.output, string(rs[0].Output))
			}
			require.Contains(t, *rs[0].Error, tc.error)
			require.Equal(t, 1, rs[0].Attempts)
		})
	}
}

func make1KiB() []byte {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = 'x'
	}
	return b
}

func TestRunMixedStatusesKeepTheirSlots(t *testing.T) {
	t.Parallel()
	killed := filepath.Join(t.TempDir(), "killed.jsonl")
	stats := filepath.Join(t.TempDir(), "stats.jsonl")
	o := cli(t, "1\n64\n2\n\"x\"\n3\n", "run", "--module", tasks(t), "--func", "memhog", "--workers", "2",
		"--memory", "16MiB", "--killed", killed, "--stats", stats)
	require.Equal(t, 0, o.code, o.stderr)
	rs := records(t, o.stdout)
	require.Len(t, rs, 5)
	got := []string{}
	for _, r := range rs {
		got = append(got, r.Status+" "+string(r.Output))
	}
	require.Equal(t, []string{"ok 1", "memory_limit null", "ok 2", "error null", "ok 3"}, got)
	require.Contains(t, *rs[3].Error, "not an integer")

	// The killed file lists the one killed task with its input.
	ks := lines[killedRecord](t, readFile(t, killed))
	require.Len(t, ks, 1)
	require.Equal(t, 1, ks[0].Index)
	require.Equal(t, "64", string(ks[0].Input))
	require.Equal(t, "memory_limit", ks[0].Status)
	require.Contains(t, ks[0].Reason, "memory limit of")
	require.Equal(t, 1, ks[0].Attempts)

	// The stats file has one line per task, in order.
	ss := lines[statsRecord](t, readFile(t, stats))
	require.Len(t, ss, 5)
	for i, s := range ss {
		require.Equal(t, i, s.Index)
		require.Equal(t, rs[i].Status, s.Status)
		require.Equal(t, 1, s.Attempts)
		require.Equal(t, int64(16<<20), s.MemoryLimit)
		start, err := time.Parse(time.RFC3339Nano, s.Start)
		require.NoError(t, err)
		end, err := time.Parse(time.RFC3339Nano, s.End)
		require.NoError(t, err)
		require.False(t, end.Before(start), "task %d ends before it starts", i)
		require.WithinDuration(t, time.Now(), start, time.Minute)
		require.Greater(t, s.WorkerPID, 0)
		require.Len(t, s.Start, len("2006-01-02T15:04:05.000000000Z"), "fixed-width nanoseconds")
	}
	require.Greater(t, ss[0].PeakMemory, int64(0))
}

func TestRunRetryGrowsTheMemoryCap(t *testing.T) {
	t.Parallel()
	killed := filepath.Join(t.TempDir(), "killed.jsonl")
	o := cli(t, "24\n", "run", "--module", tasks(t), "--func", "memhog", "--workers", "1",
		"--memory", "16MiB", "--on-kill", "retry", "--retries", "4", "--killed", killed)
	require.Equal(t, 0, o.code, o.stderr)
	rs := records(t, o.stdout)
	require.Len(t, rs, 1)
	require.Equal(t, "ok", rs[0].Status, *rs[0].Error)
	require.Equal(t, "24", string(rs[0].Output))
	require.Greater(t, rs[0].Attempts, 1)
	require.Empty(t, readFile(t, killed), "a task that succeeded on retry is not a killed task")
}

func TestRunRetriesGivesUp(t *testing.T) {
	t.Parallel()
	o := cli(t, "1\n", "run", "--module", tasks(t), "--func", "spin", "--workers", "1",
		"--timeout", "100ms", "--on-kill", "retry", "--retries", "2")
	require.Equal(t, 0, o.code, o.stderr)
	rs := records(t, o.stdout)
	require.Len(t, rs, 1)
	require.Equal(t, "timeout", rs[0].Status)
	require.Equal(t, 2, rs[0].Attempts)
}

// TestRunAbortExitsWithOne aborts on the first task and on the last: the
// pool's Imap can end a stream whose last task aborts it as if it had
// completed, and the run must fail all the same.
func TestRunAbortExitsWithOne(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, input string
		line        int
	}{
		{"first task aborts", "64\n1\n2\n", 1},
		{"last task aborts", "1\n64\n", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := cli(t, tc.input, "run", "--module", tasks(t), "--func", "memhog", "--workers", "1",
				"--memory", "16MiB", "--on-kill", "abort")
			require.Equal(t, 1, o.code, o.stderr)
			require.Contains(t, o.stderr, fmt.Sprintf("run aborted: line %d (input 64) ended with memory_limit after 1 attempt(s)", tc.line))
			require.Contains(t, o.stderr, "--on-kill skip goes on past killed tasks")
			rs := records(t, o.stdout)
			require.Len(t, rs, tc.line, "the output runs up to the task that aborted, which has its record")
			require.Equal(t, "memory_limit", rs[tc.line-1].Status)
			for _, r := range rs[:tc.line-1] {
				require.Equal(t, "ok", r.Status)
			}
		})
	}
}

func TestRunEmptyInput(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out.jsonl")
	o := cli(t, "", "run", "--module", tasks(t), "--func", "square", "--out", out)
	require.Equal(t, 0, o.code, o.stderr)
	require.Empty(t, o.stdout)
	require.Empty(t, o.stderr)
	require.Empty(t, readFile(t, out))

	o = cli(t, "", "run", "--module", tasks(t), "--func", "square", "--progress", "always")
	require.Equal(t, 0, o.code, o.stderr)
	require.Contains(t, o.stderr, "safepool: done 0/0")
}

// TestRunBadInputLines: every bad line gets a record of its own in its
// slot, saying why, the good lines still run, and the run exits with code
// 2 once everything is written.
func TestRunBadInputLines(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, input string
		slots       int
		bad         map[int]string // slot: a part of its error
	}{
		{"blank line", "1\n2\n\n4\n", 4, map[int]string{2: "line 3 is blank"}},
		{"white space only", "1\n \t\n3\n", 3, map[int]string{1: "line 2 is blank"}},
		{"invalid JSON", "1\n2\n3\n{\"a\":\n5\n", 5, map[int]string{3: "line 4 is not valid JSON: unexpected end of JSON input"}},
		{"two values on a line", "1 2\n", 1, map[int]string{0: "line 1 is not valid JSON: invalid character '2' after top-level value (at byte 3)"}},
		{"bare word", "1\nxhello\n", 2, map[int]string{1: "line 2 is not valid JSON: invalid character 'x' looking for beginning of value (at byte 1)"}},
		{"bad last line without newline", "1\n2\n[", 3, map[int]string{2: "line 3 is not valid JSON"}},
		{"not UTF-8", "1\n\"\xff\"\n", 2, map[int]string{1: "line 2 is not valid UTF-8, which JSON must be; pass binary input as base64 with --encoding base64"}},
		{"several", "x\n1\n\n\n2\n[\n3\ny\n", 8, map[int]string{0: "line 1 is not valid JSON", 2: "line 3 is blank", 3: "line 4 is blank", 5: "line 6 is not valid JSON", 7: "line 8 is not valid JSON"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "out.jsonl")
			o := cli(t, tc.input, "run", "--module", tasks(t), "--func", "square", "--workers", "2", "--out", out)
			require.Equal(t, 2, o.code, o.stderr)
			require.Contains(t, o.stderr, fmt.Sprintf("bad input: %d line(s) of stdin are not tasks", len(tc.bad)))
			require.Contains(t, o.stderr, "fix those lines")
			require.Empty(t, o.stdout)

			rs := records(t, readFile(t, out))
			require.Len(t, rs, tc.slots)
			for i, r := range rs {
				if why, ok := tc.bad[i]; ok {
					require.Equal(t, "error", r.Status, "slot %d", i)
					require.Equal(t, 0, r.Attempts, "slot %d never ran", i)
					require.Contains(t, *r.Error, why)
					continue
				}
				require.Equal(t, "ok", r.Status, "slot %d: the good lines run: %s", i, *r.Error)
				require.Equal(t, 1, r.Attempts)
			}
		})
	}
	t.Run("the message names the file and the lines", func(t *testing.T) {
		t.Parallel()
		in := filepath.Join(t.TempDir(), "tasks.jsonl")
		require.NoError(t, os.WriteFile(in, []byte("1\r\n\r\n2\r\nx\r\n"), 0o644))
		o := cli(t, "", "run", "--module", tasks(t), "--func", "square", "--in", in)
		require.Equal(t, 2, o.code)
		require.Contains(t, o.stderr, "bad input: 2 line(s) of "+in+" are not tasks (lines 2, 4); the first: line 2 is blank")
		require.Len(t, records(t, o.stdout), 4)
	})
}

// TestRunTrailingBlankLines: blank lines at the end of the input, and
// every way of ending the last line, are not tasks.
func TestRunTrailingBlankLines(t *testing.T) {
	t.Parallel()
	for _, input := range []string{"1\n2", "1\n2\n", "1\n2\n\n", "1\n2\n\n\n", "1\r\n2\r\n\r\n", "1\n2\n \t\n\n", "1\n2\n  "} {
		o := cli(t, input, "run", "--module", tasks(t), "--func", "square")
		require.Equal(t, 0, o.code, "input %q: %s", input, o.stderr)
		rs := records(t, o.stdout)
		require.Len(t, rs, 2, "input %q", input)
		require.Equal(t, "4", string(rs[1].Output))
	}
}

func TestRunInAndOutFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	// CRLF line endings and a last line without one are fine.
	require.NoError(t, os.WriteFile(in, []byte("3\r\n4\n5"), 0o644))
	o := cli(t, "", "run", "--module", tasks(t), "--func", "square", "--in", in, "--out", out)
	require.Equal(t, 0, o.code, o.stderr)
	require.Empty(t, o.stdout)
	rs := records(t, readFile(t, out))
	require.Len(t, rs, 3)
	require.Equal(t, "25", string(rs[2].Output))
}

func TestRunCommandModule(t *testing.T) {
	t.Parallel()
	upper := testguest.Path(t, "upper")
	o := cli(t, "\"hello\"\n[1,\"x y\"]\n{\"k\":\"v\"}\n", "run", "--module", upper, "--workers", "2")
	require.Equal(t, 0, o.code, o.stderr)
	rs := records(t, o.stdout)
	require.Len(t, rs, 3)
	require.Equal(t, `"HELLO"`, string(rs[0].Output))
	require.Equal(t, `[1,"X Y"]`, string(rs[1].Output))
	require.Equal(t, `{"K":"V"}`, string(rs[2].Output))

	o = cli(t, "1\n", "run", "--module", upper, "--func", "square")
	require.Equal(t, 2, o.code)
	require.Contains(t, o.stderr, "is a WASI command module")
	require.Contains(t, o.stderr, "drop --func")
}

func TestRunFuncMustMatchTheModule(t *testing.T) {
	t.Parallel()
	o := cli(t, "1\n", "run", "--module", tasks(t))
	require.Equal(t, 2, o.code)
	require.Contains(t, o.stderr, "pick its handler with --func NAME, one of: big, callhost, echo")
	require.Contains(t, o.stderr, "slow_square, spin, square")

	o = cli(t, "1\n", "run", "--module", tasks(t), "--func", "cube")
	require.Equal(t, 2, o.code)
	require.Contains(t, o.stderr, "--func cube")
	require.Contains(t, o.stderr, "use one of: big, callhost, echo")
}

// TestRunBadFlags: every bad value of every flag is exit code 2, before
// anything runs, with a message that says what to do.
func TestRunBadFlags(t *testing.T) {
	t.Parallel()
	mod := testguest.Path(t, "wsquare")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--bogus"}, "run: unknown flag --bogus; run 'safepool run -h' for the flags"},
		{"flag without its value", []string{"--module", mod, "--timeout"}, "run: --timeout needs a value, as in --timeout VALUE or --timeout=VALUE"},
		{"no module", []string{"--func", "square"}, "--module is required"},
		{"workers not a number", []string{"--module", mod, "--workers", "four"}, "run: --workers four: not a whole number; use a number such as 4"},
		{"negative workers", []string{"--module", mod, "--workers", "-1"}, "--workers -1 is negative; use a positive number, or 0 (the default) for one worker per CPU"},
		{"spares not a number", []string{"--module", mod, "--spares", "1.5"}, "--spares 1.5: not a whole number"},
		{"negative spares", []string{"--module", mod, "--spares", "-1"}, "--spares -1 is negative"},
		{"ambiguous size", []string{"--module", mod, "--memory", "64M"}, `--memory 64M: size "64M" is ambiguous; write 64MiB`},
		{"bad size", []string{"--module", mod, "--memory", "lots"}, "--memory lots: size \"lots\" does not start with a number"},
		{"size too large", []string{"--module", mod, "--memory", "8GiB"}, "--memory 8GiB is out of range; use a size from 64KiB to 4GiB"},
		{"size too small", []string{"--module", mod, "--memory", "1KiB"}, "--memory 1KiB is out of range"},
		{"bad duration", []string{"--module", mod, "--timeout", "abc"}, "run: --timeout abc: not a duration; use a Go duration such as 500ms, 2s or 1m30s"},
		{"duration without unit", []string{"--module", mod, "--timeout", "5"}, "--timeout 5: not a duration"},
		{"negative duration", []string{"--module", mod, "--timeout", "-1s"}, "--timeout -1s is negative"},
		{"bad start timeout", []string{"--module", mod, "--start-timeout", "soon"}, "--start-timeout soon: not a duration"},
		{"zero start timeout", []string{"--module", mod, "--start-timeout", "0s"}, "--start-timeout 0s must be positive; use a duration such as 30s (the default)"},
		{"bad start give-up", []string{"--module", mod, "--start-give-up", "never"}, "--start-give-up never: not a duration"},
		{"negative start give-up", []string{"--module", mod, "--start-give-up", "-2s"}, "--start-give-up -2s must be positive; use a duration such as 10s (the default)"},
		{"bad kill policy", []string{"--module", mod, "--on-kill", "ignore"}, "--on-kill ignore: not a policy; use skip, abort or retry"},
		{"bad error policy", []string{"--module", mod, "--on-error", "ignore"}, "--on-error ignore: not a policy; use skip, abort or retry"},
		{"retries not a number", []string{"--module", mod, "--on-kill", "retry", "--retries", "many"}, "--retries many: not a whole number"},
		{"retries without retry", []string{"--module", mod, "--retries", "3"}, "--retries only applies with --on-kill retry or --on-error retry"},
		{"zero retries", []string{"--module", mod, "--on-kill", "retry", "--retries", "0"}, "--retries 0 must be at least 1"},
		{"bad fresh-instance", []string{"--module", mod, "--fresh-instance=maybe"}, "--fresh-instance maybe: not true or false; give the flag alone to turn it on"},
		{"max tasks not a number", []string{"--module", mod, "--max-tasks-per-worker", "x"}, "--max-tasks-per-worker x: not a whole number"},
		{"negative max tasks", []string{"--module", mod, "--max-tasks-per-worker", "-1"}, "--max-tasks-per-worker -1 is negative; use a positive number, or 0 (the default) to never recycle workers"},
		{"bad output limit", []string{"--module", mod, "--output-limit", "big"}, "--output-limit big: size \"big\" does not start with a number"},
		{"zero output limit", []string{"--module", mod, "--output-limit", "0"}, "--output-limit 0 is out of range; use a size from 1B to 1GiB"},
		{"output limit too large", []string{"--module", mod, "--output-limit", "2GiB"}, "--output-limit 2GiB is out of range"},
		{"bad overcommit", []string{"--module", mod, "--overcommit=lots"}, "--overcommit lots: not true or false"},
		{"bad resume", []string{"--module", mod, "--resume=please"}, "--resume please: not true or false"},
		{"resume without out", []string{"--module", mod, "--resume"}, "--resume needs --out PATH"},
		{"bad encoding", []string{"--module", mod, "--encoding", "hex"}, "--encoding hex: use json or base64"},
		{"bad progress", []string{"--module", mod, "--progress", "sometimes"}, "--progress sometimes: use auto, always or never"},
		{"unknown engine", []string{"--module", mod, "--engine", "v8"}, `unknown engine "v8"; use wazero or wasmtime`},
		// cmd/safepool does not import the wasmtime engine: the message
		// names the build of the command that does.
		{"engine not built in", []string{"--module", mod, "--engine", "wasmtime"}, `run: --engine "wasmtime": this safepool has no wasmtime (it has wazero); install the wasmtime build of safepool, which needs cgo and a C compiler: go install github.com/safepool/safepool/engine/wasmtime/cmd/safepool@latest`},
		{"extra argument", []string{"--module", mod, "tasks.jsonl"}, `unexpected argument "tasks.jsonl"`},
		{"missing input file", []string{"--module", mod, "--func", "square", "--in", "/nonexistent/in.jsonl"}, "--in: open /nonexistent/in.jsonl"},
		{"unwritable output", []string{"--module", mod, "--func", "square", "--out", "/nonexistent/out.jsonl"}, "--out: open /nonexistent/out.jsonl"},
		{"unwritable stats", []string{"--module", mod, "--func", "square", "--stats", "/nonexistent/stats.jsonl"}, "--stats: open /nonexistent/stats.jsonl"},
		{"unwritable killed", []string{"--module", mod, "--func", "square", "--killed", "/nonexistent/killed.jsonl"}, "--killed: open /nonexistent/killed.jsonl"},
		{"too many workers for the memory", []string{"--module", mod, "--func", "square", "--workers", "4096", "--memory", "4GiB"}, "set Overcommit (--overcommit) to start them anyway"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := cli(t, "1\n", append([]string{"run"}, tc.args...)...)
			require.Equal(t, 2, o.code, o.stderr)
			require.Contains(t, o.stderr, tc.want)
			require.Empty(t, o.stdout)
		})
	}
}

func TestRunBadModule(t *testing.T) {
	t.Parallel()
	notWasm := filepath.Join(t.TempDir(), "notes.txt")
	require.NoError(t, os.WriteFile(notWasm, []byte("these are not the bytes you are looking for"), 0o644))
	cases := []struct{ name, module, want string }{
		{"forbidden import", testguest.Path(t, "wbadimport"), "env.foo"},
		{"no task exports", testguest.Path(t, "wnoexport"), "neither safepool_abi_version nor _start"},
		{"not wasm", notWasm, "not a WebAssembly module"},
		{"missing file", filepath.Join(t.TempDir(), "gone.wasm"), "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := cli(t, "1\n", "run", "--module", tc.module, "--func", "square")
			require.Equal(t, 2, o.code, o.stderr)
			require.Contains(t, o.stderr, tc.want)
			require.Empty(t, o.stdout)
		})
	}
}

func TestRunProgress(t *testing.T) {
	t.Parallel()
	o := cli(t, numbers(5), "run", "--module", tasks(t), "--func", "square", "--progress", "always")
	require.Equal(t, 0, o.code, o.stderr)
	require.Len(t, records(t, o.stdout), 5)
	require.Regexp(t, `safepool: done 5/5: ok 5, error 0, killed 0, retried 0, elapsed \d`, o.stderr)

	o = cli(t, numbers(5), "run", "--module", tasks(t), "--func", "square", "--progress", "never")
	require.Equal(t, 0, o.code, o.stderr)
	require.Empty(t, o.stderr)
}

// TestRunProgressCountsARegularFile: the input is read as the run goes,
// so the total is known only from counting a regular file's lines on the
// side; the line then shows it.
func TestRunProgressCountsARegularFile(t *testing.T) {
	t.Parallel()
	in := filepath.Join(t.TempDir(), "in.jsonl")
	require.NoError(t, os.WriteFile(in, []byte(numbers(30)+"\n\n"), 0o644))
	o := cli(t, "", "run", "--module", tasks(t), "--func", "slow_square", "--workers", "1", "--in", in, "--progress", "always")
	require.Equal(t, 0, o.code, o.stderr)
	require.Regexp(t, `safepool: \d+/30 \(\d+%\): ok \d+, error 0, killed 0, \d+/s`, o.stderr, "trailing blank lines are not counted")
	require.Contains(t, o.stderr, "safepool: done 30/30: ok 30, error 0, killed 0, retried 0")

	// From a pipe there is no total, only counts.
	o = cli(t, numbers(30), "run", "--module", tasks(t), "--func", "slow_square", "--workers", "1", "--progress", "always")
	require.Equal(t, 0, o.code, o.stderr)
	require.Regexp(t, `safepool: \d+ done: ok \d+, error 0, killed 0, \d+/s`, o.stderr)
	require.NotRegexp(t, `\d+/30 \(`, o.stderr)
}
