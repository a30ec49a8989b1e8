package main_test

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/examples/internal/exampletest"
)

func TestClusterEmbeddedRetry(t *testing.T) {
	stdout, stderr, code := exampletest.Run(t)
	require.Equal(t, 0, code, stderr)
	want := `^== retry on an embedded cluster
kill -9 \d+ \(the worker running task 3, on agent \S+\)
\[0 1 4 9 16 25 36 49 64 81\]
task 3: ok after 2 attempt\(s\), last on agent \S+
killed tasks: 0
$`
	require.Regexp(t, want, stdout)
}

func TestClusterEmbeddedSkip(t *testing.T) {
	stdout, stderr, code := exampletest.Run(t, "-policy", "skip")
	require.Equal(t, 0, code, stderr)
	want := `^== skip on an embedded cluster
kill -9 \d+ \(the worker running task 3, on agent \S+\)
\[0 1 4 <nil> 16 25 36 49 64 81\]
task 3: killed after 1 attempt\(s\), last on agent \S+
killed tasks: 1
  task 3: square\(3\), status killed after 1 attempt\(s\): worker killed by SIGKILL while running the task \(agent \S+ on host \S+\)
$`
	require.Regexp(t, want, stdout)
}

func TestClusterRefusesABadPolicy(t *testing.T) {
	_, stderr, code := exampletest.Run(t, "-policy", "ignore")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "-policy must be skip, retry or abort")
}

// TestClusterOnServe runs the example against 'safepool serve', a real
// server and agent in another process, as the README says.
func TestClusterOnServe(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "safepool")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/safepool").CombinedOutput(); err != nil {
		t.Fatalf("building safepool: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	serve := exec.CommandContext(ctx, bin, "serve", "--listen", "127.0.0.1:0", "--workers", "2", "--store", filepath.Join(dir, "store"))
	stderr, err := serve.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, serve.Start())
	t.Cleanup(func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		_ = serve.Wait()
	})
	url := ""
	sc := bufio.NewScanner(stderr)
	for url == "" && sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "safepool: serving on "); ok {
			url, _, _ = strings.Cut(rest, " ")
		}
	}
	require.NotEmpty(t, url, "safepool serve said where it serves")
	go func() {
		for sc.Scan() {
		}
	}()

	stdout, errOut, code := exampletest.Run(t, "-nats", url)
	require.Equal(t, 0, code, errOut)
	want := `^== retry on nats://127\.0\.0\.1:\d+
kill -9 \d+ \(the worker running task 3, on agent \S+\)
\[0 1 4 9 16 25 36 49 64 81\]
task 3: ok after 2 attempt\(s\), last on agent \S+
killed tasks: 0
$`
	require.Regexp(t, want, stdout)
}
