package guest_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/guest"
)

// The registry is global, so every test registers names of its own.

func TestHandleRejectsBadRegistrations(t *testing.T) {
	ok := func(in []byte) ([]byte, error) { return in, nil }
	guest.Handle("handle-dup", ok)

	cases := []struct {
		name string
		reg  func()
		want string
	}{
		{"empty name", func() { guest.Handle("", ok) }, "empty name"},
		{"newline in name", func() { guest.Handle("a\nb", ok) }, "contains a newline"},
		{"nil function", func() { guest.Handle("handle-nil", nil) }, "nil function"},
		{"nil JSON function", func() { guest.HandleJSON[int, int]("handle-nil-json", nil) }, "nil function"},
		{"duplicate", func() { guest.Handle("handle-dup", ok) }, `"handle-dup" registered twice`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				v := recover()
				require.NotNil(t, v, "registration should panic")
				require.Contains(t, v, tc.want)
			}()
			tc.reg()
		})
	}
	require.NotContains(t, guest.HandlerNames(), "handle-nil")
}

func TestHandleJSON(t *testing.T) {
	type point struct{ X, Y int }
	guest.HandleJSON("json-square", func(n int64) (int64, error) { return n * n, nil })
	guest.HandleJSON("json-swap", func(p point) (point, error) { return point{p.Y, p.X}, nil })
	guest.HandleJSON("json-fail", func(s string) (int, error) { return 0, errors.New("no " + s) })
	guest.HandleJSON("json-unencodable", func(int) (func(), error) { return func() {}, nil })

	cases := []struct {
		name, fn, in string
		status       int32
		want         string
	}{
		{"integer", "json-square", "7", guest.StatusOK, "49"},
		{"negative with spaces", "json-square", " -12\n", guest.StatusOK, "144"},
		{"struct", "json-swap", `{"X":1,"Y":2}`, guest.StatusOK, `{"X":2,"Y":1}`},
		{"handler error", "json-fail", `"luck"`, guest.StatusError, "no luck"},
		{"not JSON", "json-square", "seven", guest.StatusError,
			"json-square: input is not valid JSON for int64: invalid character 's' looking for beginning of value"},
		{"wrong type", "json-square", `"7"`, guest.StatusError,
			"json-square: input is not valid JSON for int64: json: cannot unmarshal string into Go value of type int64"},
		{"empty input", "json-square", "", guest.StatusError,
			"json-square: input is not valid JSON for int64: unexpected end of JSON input"},
		{"unencodable output", "json-unencodable", "1", guest.StatusError,
			"json-unencodable: cannot encode output as JSON: json: unsupported type: func()"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, out := guest.Invoke([]byte(tc.fn), []byte(tc.in))
			require.Equal(t, tc.status, status, "output: %s", out)
			require.Equal(t, tc.want, string(out))
		})
	}
}

func TestHandlerNamesAreSorted(t *testing.T) {
	ok := func(in []byte) ([]byte, error) { return in, nil }
	guest.Handle("names-b", ok)
	guest.Handle("names-a", ok)
	names := guest.HandlerNames()
	require.Subset(t, names, []string{"names-a", "names-b"})
	require.True(t, strings.Compare(names[0], names[len(names)-1]) < 0)
	for i := 1; i < len(names); i++ {
		require.Less(t, names[i-1], names[i])
	}
}
