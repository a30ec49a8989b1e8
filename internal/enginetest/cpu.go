package enginetest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// HostCPU is the CPU time this process has used so far, user and system,
// in nanoseconds: the host's, without its children (the workers).
// Benchmarks report it per task beside the wall time, which moves more
// when other work shares the cores.
func HostCPU(tb testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// WorkerCPU is the CPU time the processes pids have run, in nanoseconds:
// the sum over their threads of /proc/PID/task/TID/schedstat's first field
// (/proc/PID/stat counts 10 ms ticks). A thread that ended meanwhile is
// left out.
func WorkerCPU(pids []int) int64 {
	var ns int64
	for _, pid := range pids {
		files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				continue // the thread ended
			}
			if fs := strings.Fields(string(data)); len(fs) > 0 {
				v, _ := strconv.ParseInt(fs[0], 10, 64)
				ns += v
			}
		}
	}
	return ns
}
