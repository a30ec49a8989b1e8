package pool_test

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/pool"
)

// rssFileKiB is process pid's resident pages of mapped files (RssFile),
// in KiB.
func rssFileKiB(t *testing.T, pid string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/status")
	require.NoError(t, err)
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("RssFile:")); ok {
			n, err := strconv.ParseInt(string(bytes.Fields(v)[0]), 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatalf("no RssFile in /proc/%s/status", pid)
	return 0
}

// A worker is this binary, started anew; once it has answered its
// handshake it unmaps the pages of the binary that start-up touched and
// work does not use (proc.TrimFilePages), so that an idle worker holds
// far fewer of them than the host, which has run the same binary's code
// all along, and it goes on answering.
func TestIdleWorkerTrimsTheBinarysPages(t *testing.T) {
	p := newPool(t, "wchaos", func(c *pool.Config) { c.Workers = 1 })
	ctx := context.Background()
	r, err := p.Apply(ctx, "square", []byte("7"))
	require.NoError(t, err)
	require.Equal(t, "49", string(r.Output))
	pid := strconv.Itoa(p.Snapshot().Workers[0])
	host := rssFileKiB(t, "self")
	var worker int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		// The trim runs beside the first tasks, on a goroutine of its own.
		if worker = rssFileKiB(t, pid); worker < host/2 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("file pages: the idle worker %d KiB, the host %d KiB", worker, host)
	require.Less(t, worker, host/2, "the idle worker holds %d KiB of file pages, the host %d KiB", worker, host)
	r, err = p.Apply(ctx, "square", []byte("8"))
	require.NoError(t, err)
	require.Equal(t, "64", string(r.Output))
}
