package cli_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/cluster"
)

func TestServeRefusesBadFlags(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"neither", nil, "give --listen HOST:PORT to run a server here"},
		{"both", []string{"--listen", "127.0.0.1:0", "--nats", "nats://h:4222"}, "give one of them"},
		{"public without auth", []string{"--listen", "0.0.0.0:4222"},
			"--listen 0.0.0.0:4222 is reachable from other machines, and anyone who reaches it could run tasks and read results: add --token TOKEN"},
		{"all interfaces without auth", []string{"--listen", ":4222"}, "is reachable from other machines"},
		{"public cluster port without a secret", []string{"--listen", "127.0.0.1:0", "--cluster-listen", "0.0.0.0:6222", "--routes", "nats://h:6222"},
			"--cluster-listen 0.0.0.0:6222 is reachable from other machines"},
		{"cluster port without routes", []string{"--listen", "127.0.0.1:0", "--cluster-listen", "127.0.0.1:6222"}, "--cluster-listen needs --routes"},
		{"routes without cluster port", []string{"--listen", "127.0.0.1:0", "--routes", "nats://h:6222"}, "--routes needs --cluster-listen"},
		{"bad listen", []string{"--listen", "4222"}, "--listen 4222 is not HOST:PORT"},
		{"server flag with --nats", []string{"--nats", "nats://h:4222", "--store", "/tmp/x"}, "--store is for a server run here (--listen); drop it with --nats"},
		{"client flag with --listen", []string{"--listen", "127.0.0.1:0", "--creds", "x.creds"}, "--creds and --nkey-seed are for --nats"},
		{"bad URL", []string{"--nats", "h:4222"}, `"h:4222" is not a server URL`},
		{"user without password", []string{"--listen", "127.0.0.1:0", "--user", "u"}, "--user and --password go together"},
		{"negative workers", []string{"--listen", "127.0.0.1:0", "--workers", "-1"}, "--workers -1 is negative"},
		{"memory", []string{"--listen", "127.0.0.1:0", "--memory", "1KiB"}, "--memory 1KiB is out of range"},
		{"unknown flag", []string{"--listen", "127.0.0.1:0", "--bogus"}, "unknown flag --bogus"},
		{"argument", []string{"--listen", "127.0.0.1:0", "extra"}, `unexpected argument "extra"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := cli(t, "", append([]string{"serve"}, tc.args...)...)
			require.Equal(t, 2, o.code, o.stderr)
			require.Contains(t, o.stderr, tc.want)
		})
	}
}

func TestRunRefusesClusterFlagsWithoutNATS(t *testing.T) {
	o := cli(t, "1\n", "run", "--module", tasks(t), "--func", "square", "--token", "x")
	require.Equal(t, 2, o.code)
	require.Contains(t, o.stderr, "--token is for running on a cluster; add --nats URL, or drop it")

	o = cli(t, "1\n", "run", "--module", tasks(t), "--func", "square", "--nats", "localhost:4222")
	require.Equal(t, 2, o.code)
	require.Contains(t, o.stderr, `"localhost:4222" is not a server URL`)
}

func TestServeHelp(t *testing.T) {
	o := cli(t, "", "help", "serve")
	require.Equal(t, 0, o.code)
	require.Contains(t, o.stdout, "safepool serve --listen HOST:PORT")
	require.Contains(t, o.stdout, "--routes URLS")
	o = cli(t, "", "serve", "-h")
	require.Equal(t, 0, o.code)
	require.Contains(t, o.stdout, "SIGINT or SIGTERM stops it")
	o = cli(t, "", "help")
	require.Contains(t, o.stdout, "safepool serve --listen HOST:PORT | --nats URL")
}

// startServe starts 'safepool serve' and waits for its line saying it
// serves, and returns the URL it serves on.
func startServe(t *testing.T, args ...string) (cmd *exec.Cmd, url string) {
	cmd, url, _ = startServeLines(t, args...)
	return cmd, url
}

// startServeLines is startServe that also returns the lines serve wrote
// on stderr before it served.
func startServeLines(t *testing.T, args ...string) (cmd *exec.Cmd, url string, before []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd = exec.CommandContext(ctx, bin, append([]string{"serve"}, args...)...)
	cmd.Env = cliEnv()
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		before = append(before, line)
		if rest, found := strings.CutPrefix(line, "safepool: serving on "); found {
			url, _, _ = strings.Cut(rest, " ")
			// The rest of stderr is read by the time the process exits.
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd, url, before
		}
	}
	_ = cmd.Wait()
	t.Fatalf("safepool serve stopped before it served: %v", sc.Err())
	return nil, "", nil
}

func TestServeStopsOnSIGTERM(t *testing.T) {
	cmd, url := startServe(t, "--listen", "127.0.0.1:0", "--workers", "1", "--store", t.TempDir())
	require.True(t, strings.HasPrefix(url, "nats://127.0.0.1:"), url)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	err := cmd.Wait()
	require.NoError(t, err, "exit code 0 after SIGTERM")
}

func TestLeanWorkerIsUsedWhenItSitsNextToTheCommand(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "safepool")
	if err := os.Link(bin, exe); err != nil {
		data, err := os.ReadFile(bin)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(exe, data, 0o755))
	}
	// A stand-in for the lean worker that leaves a mark and becomes a
	// worker: the real one is the same but for the packages linked in.
	mark := filepath.Join(dir, "used")
	script := "#!/bin/sh\n: > " + mark + "\nexec " + exe + " worker\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "safepool-worker"), []byte(script), 0o755))

	cmd := exec.Command(exe, "run", "--module", tasks(t), "--func", "square", "--workers", "1")
	cmd.Env = cliEnv()
	cmd.Stdin = strings.NewReader(numbers(3))
	out, err := cmd.Output()
	require.NoError(t, err)
	requireSquares(t, string(out), 3)
	_, err = os.Stat(mark)
	require.NoError(t, err, "the workers were started with safepool-worker")
}

// TestServeWorkersDieWithItOnSIGKILL: the workers of a served agent have
// SIGKILL as their parent-death signal, like those of a local run.
func TestServeWorkersDieWithItOnSIGKILL(t *testing.T) {
	cmd, url := startServe(t, "--listen", "127.0.0.1:0", "--workers", "2", "--store", t.TempDir())
	// A run whose tasks sleep keeps the agent's workers busy.
	r := start(t, strings.NewReader(strings.Repeat("60000\n", 4)), "run", "--nats", url, "--module", tasks(t), "--func", "sleep", "--workers", "2")
	var workers []int
	for range 600 {
		if workers, _ = childPIDs(cmd.Process.Pid); len(workers) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.NotEmpty(t, workers, "the agent started workers")
	require.NoError(t, syscall.Kill(cmd.Process.Pid, syscall.SIGKILL))
	_ = cmd.Wait()
	for _, w := range workers {
		waitGone(t, w)
	}
	require.NoError(t, syscall.Kill(r.pid(), syscall.SIGKILL))
}

// TestServeMetrics: --metrics serves the agent's counts of the attempts it
// ran and the workers it started, while it serves.
func TestServeMetrics(t *testing.T) {
	cmd, url, before := startServeLines(t, "--listen", "127.0.0.1:0", "--workers", "1", "--store", t.TempDir(),
		"--metrics", "127.0.0.1:0", "--log-level", "info")
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	var addr string
	for _, l := range before {
		if rest, ok := strings.CutPrefix(l, "safepool: serving metrics on "); ok {
			addr = rest
		}
	}
	require.NotEmpty(t, addr, "serve says where its metrics are: %q", before)

	o := cli(t, numbers(5), "run", "--nats", url, "--module", tasks(t), "--func", "square")
	require.Equal(t, 0, o.code, o.stderr)
	requireSquares(t, o.stdout, 5)

	resp, err := http.Get(addr)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, string(body), `safepool_attempts_total{status="ok"} 5`)
	require.Regexp(t, `safepool_worker_starts_total [1-9]`, string(body))
}

func TestServeRefusesBadObservingFlags(t *testing.T) {
	o := cli(t, "", "serve", "--listen", "127.0.0.1:0", "--log-level", "loud")
	require.Equal(t, 2, o.code)
	require.Contains(t, o.stderr, "--log-level")
	require.Contains(t, o.stderr, "use debug, info, warn or error")

	o = cli(t, "", "serve", "--listen", "127.0.0.1:0", "--store", t.TempDir(), "--metrics", "nowhere")
	require.Equal(t, 2, o.code)
	require.Contains(t, o.stderr, "--metrics nowhere")
	require.Contains(t, o.stderr, "give a free address such as 127.0.0.1:9091")
}

// TestRunOnAClusterWithoutAgents: a run on servers that no agent has
// joined fails within --start-timeout, with exit code 1, and says how to
// start one; one on servers that cannot be reached fails the same way.
func TestRunOnAClusterWithoutAgents(t *testing.T) {
	srv, err := cluster.StartServer(cluster.ServerConfig{})
	require.NoError(t, err)
	defer srv.Shutdown()
	o := cli(t, numbers(3), "run", "--nats", srv.ClientURL(), "--module", tasks(t), "--func", "square", "--start-timeout", "1s")
	require.Equal(t, 1, o.code, o.stderr)
	require.Contains(t, o.stderr, "no agent joined the cluster")
	require.Contains(t, o.stderr, "safepool serve --nats")
	require.Empty(t, o.stdout)

	o = cli(t, numbers(3), "run", "--nats", "nats://127.0.0.1:1", "--module", tasks(t), "--func", "square")
	require.Equal(t, 1, o.code, o.stderr)
	require.Contains(t, o.stderr, "cluster unavailable")
}
