package report_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/report"
)

// The browser test loads a report in headless Chromium, checks that the
// page raises no console message of level error (a blocked fetch, a bad
// element, an exception) and that the browser drew the killed task and the
// retry, and takes a screenshot.
//
// Chromium comes from Debian's packages (apt-get install -y chromium; .ci/run
// installs it). Without it the test fails, unless SAFEPOOL_SKIP_BROWSER=1
// allows skipping on a machine that has none.
//
// SAFEPOOL_REPORT_STATS and SAFEPOOL_REPORT_KILLED render those files
// instead of testdata's, and SAFEPOOL_REPORT_PNG keeps the screenshot
// there: 'make report-png' makes docs/report.png that way from the demo.

func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("SAFEPOOL_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("SAFEPOOL_SKIP_BROWSER") == "1" {
		t.Skip("no chromium, and SAFEPOOL_SKIP_BROWSER=1")
	}
	t.Fatal("the browser test needs Chromium: install it with 'apt-get install -y chromium' (Debian), " +
		"point SAFEPOOL_CHROMIUM at a Chromium or Chrome binary, or set SAFEPOOL_SKIP_BROWSER=1 to skip this test locally")
	return ""
}

// browser starts headless Chromium with a fresh profile and no network
// services, and returns a tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	tctx, tcancel := chromedp.NewContext(actx)
	t.Cleanup(tcancel)
	require.NoError(t, chromedp.Do(tctx)) // start it, so that listening misses nothing
	return tctx
}

// console records the page's console messages of level error.
type console struct {
	mu   sync.Mutex
	errs []string
}

func listen(t *testing.T, ctx context.Context) *console {
	c := &console{}
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
				msg = "console." + string(e.Type)
			}
		case *runtime.EventExceptionThrown:
			msg = "exception: " + e.ExceptionDetails.Text
		case *log.EventEntryAdded:
			if e.Entry.Level == log.EntryLevelError {
				msg = "log: " + e.Entry.Text
			}
		}
		if msg != "" {
			c.mu.Lock()
			c.errs = append(c.errs, msg)
			c.mu.Unlock()
		}
	}))
	return c
}

func (c *console) errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

// load opens path and waits until the page has loaded and the element sel
// is there; then one more round trip, so that the messages of the load
// have arrived.
func load(t *testing.T, ctx context.Context, path, sel string) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("file://"+path), chromedp.WaitVisible(chromedp.CSS(sel))))
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("document.readyState === 'complete'"))
	require.NoError(t, err)
}

func TestReportInBrowser(t *testing.T) {
	ctx := browser(t)
	c := listen(t, ctx)

	// First show that the listener hears what it must: a page that logs
	// an error, throws, and tries a fetch its policy forbids.
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.html")
	require.NoError(t, writeFile(bad, `<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'"></head>
<body><p id="p">bad</p><img src="http://127.0.0.1:9/x.png"><script>console.error("deliberate"); throw new Error("deliberate");</script></body></html>`))
	load(t, ctx, bad, "#p")
	heard := strings.Join(c.errors(), "\n")
	require.Contains(t, heard, "console.error")
	require.Contains(t, heard, "exception")
	require.Contains(t, heard, "Content Security Policy", "a blocked fetch is an error the test sees")
	c.mu.Lock()
	c.errs = nil
	c.mu.Unlock()

	stats, killed := os.Getenv("SAFEPOOL_REPORT_STATS"), os.Getenv("SAFEPOOL_REPORT_KILLED")
	if stats == "" {
		stats, killed = "testdata/stats.jsonl", "testdata/killed.jsonl"
	}
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	require.NoError(t, err)
	require.NoError(t, report.Render(f, report.Options{Stats: stats, Killed: killed}))
	require.NoError(t, f.Close())

	load(t, ctx, page, "#timeline")
	require.Empty(t, c.errors(), "the report raises no console errors")

	// The browser drew them: count the elements it laid out with a size.
	count := func(sel string) int {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`[...document.querySelectorAll('`+sel+`')].filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 }).length`))
		require.NoError(t, err)
		return n
	}
	require.Positive(t, count("#timeline .kill"), "the kill is drawn")
	require.Positive(t, count("#timeline .retry"), "the retry's link is drawn")
	require.Positive(t, count("#timeline .bars rect"), "attempts are drawn")
	require.Positive(t, count("#histogram rect"), "the histogram is drawn")
	if os.Getenv("SAFEPOOL_REPORT_STATS") == "" {
		require.Positive(t, count("#killed tr"), "the killed task is listed")
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.Greater(t, len(png), 1000)
	require.Equal(t, "\x89PNG", string(png[:4]))
	if out := os.Getenv("SAFEPOOL_REPORT_PNG"); out != "" {
		require.NoError(t, os.WriteFile(out, png, 0o644))
		t.Logf("wrote %s", out)
	}
}
