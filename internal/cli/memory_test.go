package cli_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRunMemoryStaysFlat streams 100,000 lines of 1 KiB (about 100 MiB in
// and 100 MiB out) through echo and checks the CLI's peak RSS. A CLI that
// kept the input or the results would need well over 200 MiB; one that
// streams needs the pool's window. It is a bound on memory, not on time.
func TestRunMemoryStaysFlat(t *testing.T) {
	t.Parallel()
	const n, bound = 100_000, 150 << 20
	pad := strings.Repeat("x", 1000)
	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriter(pw)
		for i := range n {
			fmt.Fprintf(w, "\"%d %s\"\n", i, pad)
		}
		pw.CloseWithError(w.Flush())
	}()
	out := filepath.Join(t.TempDir(), "out.jsonl")
	r := start(t, pr, "run", "--module", tasks(t), "--func", "echo", "--workers", "2", "--out", out)
	o := r.wait(t)
	require.Equal(t, 0, o.code, o.stderr)

	// Maxrss covers the CLI and, through the waits it did, its workers:
	// each of them must stay under the bound.
	peak := int64(r.cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) << 10
	require.Less(t, peak, int64(bound), "peak RSS %d MiB", peak>>20)

	// Every record is there, in order.
	got, err := countLines(out)
	require.NoError(t, err)
	require.Equal(t, n, got)
}

// countLines counts the lines of a file without holding it.
func countLines(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	n := 0
	for s.Scan() {
		if !strings.HasPrefix(s.Text(), fmt.Sprintf(`{"index":%d,"status":"ok","output":"%d x`, n, n)) {
			return n, fmt.Errorf("line %d is %.80q", n+1, s.Text())
		}
		n++
	}
	return n, s.Err()
}
