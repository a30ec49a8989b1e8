package harness

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// alive reports whether pid is a process that has not died (a zombie that
// no one has reaped yet counts as dead).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

// TestRunScriptLeftBehind: a script that exits while a process it forked
// still holds its stdout and stderr (as a Python pool's deadlocked worker
// can) gives its output at once, and the process left behind is killed.
func TestRunScriptLeftBehind(t *testing.T) {
	out, errOut, err := runScript(time.Minute, "/bin/sh", "-c", `sleep 600 & echo $!; echo bye >&2`)
	require.NoError(t, err, "%s", errOut)
	require.Equal(t, "bye\n", string(errOut))
	requireDies(t, out, "the process the script left behind")
}

// TestRunScriptLimit: a script still running after its limit is killed, with
// what it forked, and the error says so.
func TestRunScriptLimit(t *testing.T) {
	out, _, err := runScript(200*time.Millisecond, "/bin/sh", "-c", `sleep 600 & echo $!; wait`)
	require.Error(t, err)
	requireDies(t, out, "the script's child, after the limit,")
}

// requireDies checks that the process whose PID a script printed dies
// within 10 s.
func requireDies(t *testing.T, printed []byte, what string) {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(string(printed)))
	require.NoError(t, err, "stdout %q", printed)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.False(t, alive(pid), "%s (pid %d) is still alive", what, pid)
}
