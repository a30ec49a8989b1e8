package guest_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/guest"
)

// outcome is one recorded safepool.result call.
type outcome struct {
	Status int32
	Data   string
}

// recorder collects outcomes the way the host does, copying the bytes.
type recorder struct{ got []outcome }

func (r *recorder) report(status int32, data []byte) {
	r.got = append(r.got, outcome{status, string(data)})
}

func init() {
	guest.Handle("d-echo", func(in []byte) ([]byte, error) { return in, nil })
	guest.Handle("d-fail", func(in []byte) ([]byte, error) { return nil, fmt.Errorf("boom: %s", in) })
	guest.Handle("d-panic", func([]byte) ([]byte, error) { panic("kaboom") })
	guest.Handle("d-panic-error", func([]byte) ([]byte, error) { panic(errors.New("wrapped")) })
	guest.Handle("d-index", func(in []byte) ([]byte, error) { return in[:cap(in)+1], nil })
	guest.Handle("d-nil-panic", func([]byte) ([]byte, error) { panic(nil) })
	guest.Handle("d-bad-error", func([]byte) ([]byte, error) { return nil, (*badError)(nil) })
	guest.Handle("d-empty", func([]byte) ([]byte, error) { return nil, nil })
}

// badError panics when asked for its message.
type badError struct{ msg string }

func (e *badError) Error() string { return e.msg }

func TestInvoke(t *testing.T) {
	cases := []struct {
		name, fn, in string
		status       int32
		want         string
		prefixOnly   bool // want is the start of the message
	}{
		{"output", "d-echo", "hello", guest.StatusOK, "hello", false},
		{"empty output", "d-empty", "x", guest.StatusOK, "", false},
		{"returned error", "d-fail", "x", guest.StatusError, "boom: x", false},
		{"panic with string", "d-panic", "", guest.StatusError, "panic: kaboom", false},
		{"panic with error", "d-panic-error", "", guest.StatusError, "panic: wrapped", false},
		{"runtime error", "d-index", "ab", guest.StatusError, "panic: runtime error: slice bounds out of range", true},
		{"panic in Error method", "d-bad-error", "", guest.StatusError, "panic: runtime error: invalid memory address or nil pointer dereference", false},
		{"nil panic", "d-nil-panic", "", guest.StatusError, "panic: panic called with nil argument", true},
		{"unknown function", "nope", "", guest.StatusUnknown, `unknown function "nope"; this module has: `, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, out := guest.Invoke([]byte(tc.fn), []byte(tc.in))
			require.Equal(t, tc.status, status, "output: %s", out)
			if tc.prefixOnly {
				require.True(t, strings.HasPrefix(string(out), tc.want), "got %q", out)
				return
			}
			require.Equal(t, tc.want, string(out))
		})
	}
}

func TestPanicStackGoesToStderr(t *testing.T) {
	var log strings.Builder
	defer guest.SetPanicLog(&log)()
	status, out := guest.Invoke([]byte("d-panic"), nil)
	require.Equal(t, guest.StatusError, status)
	require.Equal(t, "panic: kaboom", string(out), "the error is the panic's message alone")
	require.True(t, strings.HasPrefix(log.String(), "panic: kaboom\n\ngoroutine "), "got %q", log.String())
	require.Contains(t, log.String(), "guest_test.init", "the stack names the handler that panicked")

	log.Reset()
	status, _ = guest.Invoke([]byte("d-fail"), []byte("x"))
	require.Equal(t, guest.StatusError, status)
	require.Empty(t, log.String(), "a returned error prints nothing")
}

func TestUnknownMessageListsHandlers(t *testing.T) {
	msg := guest.UnknownMessage("sqaure")
	want := `unknown function "sqaure"; this module has: ` + strings.Join(guest.HandlerNames(), ", ")
	require.Equal(t, want, msg)
	require.Contains(t, msg, "d-echo, d-empty, d-fail")
}

func TestRunTaskReportsOnceAndStaysUsable(t *testing.T) {
	var r recorder
	for _, fn := range []string{"d-panic", "d-echo", "d-fail", "missing", "d-echo"} {
		guest.RunTask([]byte(fn), []byte(fn), r.report)
	}
	require.Equal(t, []outcome{
		{guest.StatusError, "panic: kaboom"},
		{guest.StatusOK, "d-echo"},
		{guest.StatusError, "boom: d-fail"},
		{guest.StatusUnknown, guest.UnknownMessage("missing")},
		{guest.StatusOK, "d-echo"},
	}, r.got)
}

// TestInvokeAfterAnotherName: the lookup keeps the last handler it found;
// a task for another name, known or not, still gets its own, and the
// name's buffer may be reused between tasks.
func TestInvokeAfterAnotherName(t *testing.T) {
	var r recorder
	name := []byte("d-echo")
	guest.RunTask(name, []byte("1"), r.report)
	copy(name, "d-fail") // the same bytes, another name
	guest.RunTask(name, []byte("2"), r.report)
	guest.RunTask([]byte("d-echp"), []byte("3"), r.report)
	guest.RunTask([]byte("d-echo"), []byte("4"), r.report)
	require.Equal(t, []outcome{
		{guest.StatusOK, "1"},
		{guest.StatusError, "boom: 2"},
		{guest.StatusUnknown, `unknown function "d-echp"; this module has: ` + strings.Join(guest.HandlerNames(), ", ")},
		{guest.StatusOK, "4"},
	}, r.got)
}
