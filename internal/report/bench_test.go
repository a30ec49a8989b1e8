package report_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/safepool/safepool/internal/report"
)

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }

// writeStats writes n records of a run on 8 workers, 50 µs a task, with a
// kill and a retry every 10,000 tasks.
func writeStats(b *testing.B, path string, n int) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	t0 := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	const workers, d = 8, 50 * time.Microsecond
	for i := range n {
		lane := i % workers
		start := t0.Add(time.Duration(i/workers) * d)
		end := start.Add(d)
		pid := 1000 + lane + workers*(i/10_000)
		status, extra, attempts := "ok", "", 1
		switch {
		case i%10_000 == 9_999:
			status = "killed"
		case i%10_000 == 5_000:
			attempts = 2
			extra = fmt.Sprintf(`,"earlier_attempts":[{"start":%q,"end":%q,"worker_pid":%d,"status":"killed"}]`,
				start.Add(-d).Format(report.TimeLayout), start.Format(report.TimeLayout), pid)
		}
		fmt.Fprintf(w, `{"index":%d,"start":%q,"end":%q,"worker_pid":%d,"attempts":%d,"peak_memory":2097152,"memory_limit":67108864,"status":%q%s}`+"\n",
			i, start.Format(report.TimeLayout), end.Format(report.TimeLayout), pid, attempts, status, extra)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
}

// BenchmarkRender renders stats files of growing size. The page's size
// and the peak heap (peak-heap-MB, sampled) stay flat as the file grows:
// the report holds no record per task.
func BenchmarkRender(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "stats.jsonl")
			writeStats(b, path, n)
			runtime.GC()
			var peak atomic.Uint64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				var ms runtime.MemStats
				for {
					runtime.ReadMemStats(&ms)
					if ms.HeapInuse > peak.Load() {
						peak.Store(ms.HeapInuse)
					}
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}()
			var size int64
			for b.Loop() {
				cw := &countWriter{}
				if err := report.Render(cw, report.Options{Stats: path}); err != nil {
					b.Fatal(err)
				}
				size = cw.n
			}
			close(stop)
			wg.Wait()
			b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(size)/(1<<10), "page-KiB")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

var _ io.Writer = (*countWriter)(nil)
