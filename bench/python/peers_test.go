package python_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/bench/python"
)

// TestPeersBounded: peers.py's bound on a peer pool's life SIGKILLs the
// children still alive when it expires (a pool whose exit waits on a
// deadlocked worker), says so on stderr, and leaves alone a block that ends
// in time.
func TestPeersBounded(t *testing.T) {
	py, err := exec.LookPath("python3")
	require.NoError(t, err, "the benchmark's Python baselines need python3")
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "peers.py"), python.Peers, 0o644))
	const script = `
import subprocess, sys, time
import peers
p = subprocess.Popen(["sleep", "30"])
assert p.pid in peers.child_pids(), peers.child_pids()
start = time.time()
with peers.bounded(0.5, "stuck pool"):
    p.wait()
assert p.returncode == -9, p.returncode
assert time.time() - start < 10
q = subprocess.Popen(["true"])
with peers.bounded(5, "quick pool"):
    q.wait()
assert q.returncode == 0, q.returncode
print("ok")
`
	cmd := exec.Command(py, "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "stuck pool: still running after 0.5s; SIGKILL to its worker processes")
	require.NotContains(t, string(out), "quick pool")
	require.Contains(t, string(out), "ok\n")
}
