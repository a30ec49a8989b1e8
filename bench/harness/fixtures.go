package harness

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/safepool/safepool/internal/testguest"
)

// fixtureTB lets this program call testguest.Path, which takes a testing.TB
// only to report a failed build. testguest calls Helper and Fatalf; the
// other reporting methods are covered too, and anything else would call
// the nil embedded interface and panic, which a change in testguest would
// show at once.
type fixtureTB struct {
	testing.TB
	err error
}

func (f *fixtureTB) Helper()                        {}
func (f *fixtureTB) Fatalf(format string, a ...any) { f.fail(fmt.Sprintf(format, a...)) }
func (f *fixtureTB) Errorf(format string, a ...any) { f.fail(fmt.Sprintf(format, a...)) }
func (f *fixtureTB) Fatal(a ...any)                 { f.fail(fmt.Sprint(a...)) }
func (f *fixtureTB) Error(a ...any)                 { f.fail(fmt.Sprint(a...)) }
func (f *fixtureTB) FailNow()                       { f.fail("failed") }
func (f *fixtureTB) Logf(string, ...any)            {}
func (f *fixtureTB) Log(...any)                     {}

func (f *fixtureTB) fail(msg string) {
	if f.err == nil {
		f.err = fmt.Errorf("harness: %s", msg)
	}
}

// modulePath returns the compiled module of a test fixture, building the Go
// guest from internal/testguest/testdata the first time (a few seconds).
func modulePath(name string) (string, error) {
	tb := &fixtureTB{}
	p := testguest.Path(tb, name)
	if tb.err != nil {
		return "", tb.err
	}
	return p, nil
}

// decimals returns the inputs 0 … n-1 as ASCII decimals: valid JSON
// integers for the Go guest and plain decimals for the WAT guest.
func decimals(n int) [][]byte {
	// One backing array keeps a million inputs to one allocation.
	buf := make([]byte, 0, n*8)
	in := make([][]byte, n)
	for i := range in {
		start := len(buf)
		buf = strconv.AppendInt(buf, int64(i), 10)
		in[i] = buf[start:len(buf):len(buf)]
	}
	return in
}

// checkSquares reports the first output that is not the square of its
// index, or nil when all are right.
func checkSquares(outputs func(i int) []byte, n int) error {
	var want []byte
	for i := range n {
		want = strconv.AppendInt(want[:0], int64(i)*int64(i), 10)
		if got := outputs(i); string(got) != string(want) {
			return fmt.Errorf("square(%d) gave %q, want %s", i, got, want)
		}
	}
	return nil
}

// nativeSquare does what the guests' square does, in Go: parse an ASCII
// decimal, square it, format the result.
func nativeSquare(dst, in []byte) []byte {
	var v int64
	neg := false
	for i, c := range in {
		if i == 0 && c == '-' {
			neg = true
			continue
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return strconv.AppendInt(dst, v*v, 10)
}
