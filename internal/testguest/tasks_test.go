package testguest_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero/sys"
)

// tasksHandlers is every handler of the tasks fixture, as safepool_handlers
// lists them.
var tasksHandlers = []string{
	"big", "callhost", "echo", "env", "exit", "fail", "garbage", "hold", "memhog", "panic", "readfile",
	"recurse", "sleep", "slow_square", "spin", "square", "stderr", "stdout", "symlink", "writefile",
}

const tasksUnknown = `unknown function "nope"; this module has: big, callhost, echo, env, exit, fail, garbage, hold, memhog, panic, readfile, recurse, sleep, slow_square, spin, square, stderr, stdout, symlink, writefile`

func TestTasksCall(t *testing.T) {
	// One instance runs every case in order, so each case after an error or
	// a panic also shows that the module stayed usable.
	in := loadSDK(t, "tasks", hostOptions{})
	cases := []struct {
		name, fn, in string
		want         outcome
	}{
		{"square", "square", "7", ok("49")},
		{"error", "fail", "x", failed("boom: x")},
		{"square after an error", "square", "-12", ok("144")},
		{"panic", "panic", "", failed("panic: kaboom")},
		{"echo after a panic", "echo", "hello", ok("hello")},
		{"empty echo", "echo", "", ok("")},
		{"unknown function", "nope", "", unknown(tasksUnknown)},
		{"bad JSON", "square", "seven", failed("square: input is not valid JSON for int64: invalid character 's' looking for beginning of value")},
		{"bad number", "big", "x", failed(`input is not an integer: strconv.Atoi: parsing "x": invalid syntax`)},
		{"big", "big", "3", ok(strings.Repeat("x", 3<<10))},
		{"garbage", "garbage", "", ok("1048576")},
		{"memhog", "memhog", "4", ok("4")},
		{"slow_square", "slow_square", "9", ok("81")},
		{"square at the end", "square", "3037000499", ok("9223372030926249001")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, in.mustCall(tc.fn, tc.in))
		})
	}
}

func TestTasksLargeInputKeepsEarlierAllocation(t *testing.T) {
	// The name is allocated first and the 3 MiB input second, which needs a
	// new buffer: the name must survive that.
	in := loadSDK(t, "tasks", hostOptions{})
	big := strings.Repeat("y", 3<<20)
	require.Equal(t, ok(big), in.mustCall("echo", big))
	require.Equal(t, ok("4"), in.mustCall("square", "2"))
}

func TestTasksBatch(t *testing.T) {
	in := loadSDK(t, "tasks", hostOptions{})
	got, err := in.batch(
		task{"square", "7"},
		task{"fail", "b"},
		task{"panic", ""},
		task{"nope", ""},
		task{"echo", "last"},
	)
	require.NoError(t, err)
	require.Equal(t, []outcome{
		ok("49"),
		failed("boom: b"),
		failed("panic: kaboom"),
		unknown(tasksUnknown),
		ok("last"),
	}, got)

	got, err = in.batch()
	require.NoError(t, err)
	require.Empty(t, got, "an empty batch reports nothing")

	got, err = in.batchRaw([]byte{5, 0, 0, 0, 'e', 'c'})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, uint32(statusError), got[0].Status)
	require.Contains(t, got[0].Data, "malformed batch")

	require.Equal(t, ok("9"), in.mustCall("square", "3"), "the module stays usable")
}

func TestTasksHandlers(t *testing.T) {
	in := loadSDK(t, "tasks", hostOptions{})
	require.Equal(t, tasksHandlers, in.handlers())
}

func TestTasksOutputStreams(t *testing.T) {
	in := loadSDK(t, "tasks", hostOptions{})
	require.Equal(t, ok("ok"), in.mustCall("stdout", "2"))
	require.Equal(t, ok("ok"), in.mustCall("stderr", "3"))
	require.Equal(t, strings.Repeat("o", 2<<10), in.stdout.String())
	require.Equal(t, strings.Repeat("e", 3<<10), in.stderr.String())
}

func TestTasksSleep(t *testing.T) {
	in := loadSDK(t, "tasks", hostOptions{})
	start := time.Now()
	require.Equal(t, ok("slept"), in.mustCall("sleep", "20"))
	require.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond)
}

func TestTasksSeeNoEnvironmentOrFiles(t *testing.T) {
	in := loadSDK(t, "tasks", hostOptions{})

	var env struct{ Env, Args []string }
	o := in.mustCall("env", "")
	require.Equal(t, uint32(statusOK), o.Status)
	require.NoError(t, json.Unmarshal([]byte(o.Data), &env))
	require.Empty(t, env.Env)
	require.Empty(t, env.Args)

	var files map[string]any
	o = in.mustCall("readfile", "/etc/passwd")
	require.Equal(t, uint32(statusOK), o.Status)
	require.NoError(t, json.Unmarshal([]byte(o.Data), &files))
	require.NotContains(t, files, "content")
	require.NotContains(t, files, "entries")
	require.NotEmpty(t, files["read_error"])
	require.NotEmpty(t, files["readdir_error"])
}

func TestTasksExit(t *testing.T) {
	in := loadSDK(t, "tasks", hostOptions{})
	_, err := in.call(in.ctx, "exit", []byte("7"))
	var exit *sys.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, uint32(7), exit.ExitCode())
}

func TestTasksFatal(t *testing.T) {
	cases := []struct {
		name, fn, in string
		stderr       string
	}{
		{"memhog past the cap", "memhog", "100", "out of memory"},
		{"unbounded recursion", "recurse", "", "fatal error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := loadSDK(t, "tasks", hostOptions{memoryPages: 1024})
			_, err := in.call(in.ctx, tc.fn, []byte(tc.in))
			require.Error(t, err)
			require.Contains(t, in.stderr.String(), tc.stderr)
			require.LessOrEqual(t, in.memoryMiB(), 64.0)
		})
	}
}

func TestTasksSpinStopsOnlyByContext(t *testing.T) {
	in := loadSDK(t, "tasks", hostOptions{closeOnDone: true})
	ctx, cancel := context.WithTimeout(in.ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := in.call(ctx, "spin", nil)
	require.Error(t, err)
	require.True(t, errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "deadline"), "error: %v", err)
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
}
