package cli_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMetricsServedMidRun starts a run whose input stays open, so that it
// is certainly still running, scrapes /metrics, then ends the input and
// checks the run completes.
func TestMetricsServedMidRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	r := &running{exited: make(chan struct{}), cancel: cancel}
	r.cmd = exec.CommandContext(ctx, bin, "run", "--module", tasks(t), "--func", "square", "--workers", "2",
		"--out", out, "--metrics", "127.0.0.1:0")
	r.cmd.Env = cliEnv()
	stdin, err := r.cmd.StdinPipe()
	require.NoError(t, err)
	stderr, err := r.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, r.cmd.Start())
	// Read stderr to its end on our own: the URL, then whatever follows.
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := regexp.MustCompile(`serving metrics on (http://\S+)`).FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		close(urls)
	}()
	go func() {
		r.err = r.cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.exited
	})

	_, err = io.WriteString(stdin, numbers(5))
	require.NoError(t, err)
	url, ok := <-urls
	require.True(t, ok, "safepool did not say where it serves metrics")
	waitLines(t, r, out, 5) // the pool is up and ran five tasks; the input is still open

	resp, err := http.Get(url)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	text := string(body)
	require.Contains(t, text, "# TYPE safepool_tasks_total counter")
	require.Regexp(t, `(?m)^safepool_tasks_total\{status="ok"\} [1-5]$`, text)
	require.Regexp(t, `(?m)^safepool_workers_live 2$`, text)
	require.Regexp(t, `(?m)^safepool_worker_rss_bytes\{worker="0"\} [0-9.e+]+$`, text)
	require.Regexp(t, `(?m)^safepool_worker_starts_total 2$`, text)
	require.Contains(t, text, "safepool_task_duration_seconds_bucket")

	require.NoError(t, stdin.Close())
	o := r.wait(t)
	require.Equal(t, 0, o.code)
	requireSquares(t, readFile(t, out), 5)
}

func TestLogLevel(t *testing.T) {
	o := cli(t, numbers(3), "run", "--module", tasks(t), "--func", "square", "--workers", "1", "--log-level", "debug")
	require.Equal(t, 0, o.code, o.stderr)
	require.Contains(t, o.stderr, `level=INFO msg="worker started" worker_pid=`)
	require.Contains(t, o.stderr, `level=DEBUG msg="task done"`)
	require.Contains(t, o.stderr, `index=2 func=square attempt=1 status=ok`)

	o = cli(t, numbers(3), "run", "--module", tasks(t), "--func", "square", "--workers", "1")
	require.Equal(t, 0, o.code, o.stderr)
	require.NotContains(t, o.stderr, "level=", "no logs without --log-level")

	o = cli(t, "", "run", "--module", tasks(t), "--log-level", "loud")
	require.Equal(t, 2, o.code)
	require.Contains(t, o.stderr, "--log-level loud: not a level; use debug, info, warn or error")
}

// TestReportOfAKilledRun kills a worker under --on-kill retry and under
// skip, and checks that the report of each run shows the kill, the
// killed task's reason and (under retry) the retry's link.
func TestReportOfAKilledRun(t *testing.T) {
	for _, policy := range []string{"retry", "skip"} {
		t.Run(policy, func(t *testing.T) {
			dir := t.TempDir()
			stats, killed, page := filepath.Join(dir, "stats.jsonl"), filepath.Join(dir, "killed.jsonl"), filepath.Join(dir, "report.html")
			// Enough tasks (about 3 s of them) that the killed worker's
			// replacement runs some before the map ends, however slowly a
			// loaded machine starts a worker.
			o := runAndKillN(t, 200, "--on-kill", policy, "--stats", stats, "--killed", killed)
			require.Equal(t, 0, o.code, o.stderr)

			o = cli(t, "", "report", "--stats", stats, "--killed", killed, "-o", page)
			require.Equal(t, 0, o.code, o.stderr)
			b, err := os.ReadFile(page)
			require.NoError(t, err)
			html := string(b)
			require.True(t, strings.HasPrefix(html, "<!DOCTYPE html>"))
			require.Contains(t, html, "default-src 'none'", "the page may load nothing")
			require.NotRegexp(t, `(?i)(src|href)="?(https?:)?//`, html, "nothing from the network")
			require.Equal(t, 1, strings.Count(html, `class="kill"`), "one kill marked")
			require.Contains(t, html, `class="restart"`, "the killed worker's replacement marked")
			if policy == "retry" {
				require.Equal(t, 1, strings.Count(html, `class="retry"`), "the retry linked to the attempt before it")
				require.Regexp(t, `attempt 1: killed`, html)
				require.Regexp(t, `attempt 2: ok`, html)
			} else {
				require.Zero(t, strings.Count(html, `class="retry"`))
				require.Contains(t, html, `<table id="killed">`)
				require.Contains(t, html, "worker killed by SIGKILL while running the task")
			}
		})
	}

	o := cli(t, "", "report", "--stats", filepath.Join(t.TempDir(), "none.jsonl"), "-o", filepath.Join(t.TempDir(), "r.html"))
	require.Equal(t, 2, o.code)
	require.Contains(t, o.stderr, "no such file")
	o = cli(t, "", "report", "-o", "r.html")
	require.Equal(t, 2, o.code)
	require.Contains(t, o.stderr, "--stats FILE is required")
}
