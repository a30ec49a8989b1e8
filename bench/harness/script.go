package harness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// runScript runs one of the harness's Python scripts and returns what it
// wrote to stdout and stderr.
//
// The script runs in a process group of its own, and when it exits the
// whole group is SIGKILLed: a Python pool can leave a forked worker behind,
// asleep on a lock, with the script's stdout and stderr still open, and a
// pipe held open that way would never end for the reader. For the same
// reason both go to files, not pipes, so that waiting ends when the script
// does. A script still running after limit is killed with its group.
func runScript(limit time.Duration, exe string, args ...string) (stdout, stderr []byte, err error) {
	dir, err := os.MkdirTemp("", "safepool-bench-script-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	outF, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		return nil, nil, err
	}
	defer outF.Close()
	errF, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		return nil, nil, err
	}
	defer errF.Close()

	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stdout, cmd.Stderr = outF, errF
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // what it left behind
	}
	stdout, rerr := os.ReadFile(outF.Name())
	if err == nil {
		err = rerr
	}
	stderr, _ = os.ReadFile(errF.Name())
	return stdout, stderr, err
}
