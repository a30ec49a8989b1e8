package harness

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The checks of the command-line scenario's output files reject what is
// not n lines of right answers in order.
func TestCLIOutputChecks(t *testing.T) {
	dir := t.TempDir()
	file := func(lines ...string) string {
		p := filepath.Join(dir, "out")
		require.NoError(t, os.WriteFile(p, []byte(strings.Join(lines, "")), 0o644))
		return p
	}
	rec := func(i, out int) string {
		return `{"index":` + strconv.Itoa(i) + `,"status":"ok","output":` + strconv.Itoa(out) + `,"error":"","attempts":1}` + "\n"
	}
	require.NoError(t, checkCLIOutput(file(rec(0, 0), rec(1, 1), rec(2, 4)), 3))
	// The same fields in another order or spacing are judged by value.
	require.NoError(t, checkCLIOutput(file(rec(0, 0), `{"status":"ok", "index":1,"output":1,"error":"","attempts":2}`+"\n"), 2))
	for name, f := range map[string]string{
		"wrong square":  file(rec(0, 0), rec(1, 2)),
		"out of order":  file(rec(1, 1), rec(0, 0)),
		"too few":       file(rec(0, 0)),
		"too many":      file(rec(0, 0), rec(1, 1), rec(2, 4)),
		"not ok":        file(rec(0, 0), `{"index":1,"status":"killed","output":null,"error":"x","attempts":1}`+"\n"),
		"partial line":  file(rec(0, 0), strings.TrimSuffix(rec(1, 1), "\n")),
		"not a record":  file(rec(0, 0), "1\n"),
		"not even JSON": file(rec(0, 0), "{\n"),
	} {
		require.Error(t, checkCLIOutput(f, 2), name)
	}

	require.NoError(t, checkPlainSquares(file("0\n", "1\n", "4\n"), 3))
	require.Error(t, checkPlainSquares(file("0\n", "1\n", "5\n"), 3))
	require.Error(t, checkPlainSquares(file("0\n", "1\n"), 3))
	require.Error(t, checkPlainSquares(file("0\n", "1\n", "4"), 3))
}

// runChild measures a program that succeeds and the processes it starts,
// and says why one failed.
func TestRunChild(t *testing.T) {
	m, err := runChild(context.Background(), "sh", "-c", "sleep 0.3 & sleep 0.3 & wait")
	require.NoError(t, err)
	require.GreaterOrEqual(t, m.wall, 300*time.Millisecond)
	require.Positive(t, m.samples)
	require.Positive(t, m.peakKiB)
	require.Equal(t, 2, m.workers, "the two sleeps")
	require.Positive(t, m.workerKiB)

	_, err = runChild(context.Background(), "sh", "-c", "echo the reason >&2; exit 3")
	require.ErrorContains(t, err, "exit status 3")
	require.ErrorContains(t, err, "the reason")
}
