package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// which is 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// rssKiB returns VmRSS of a process ("self" for this one), in KiB.
func rssKiB(pid string) (int64, error) { return statusKiB(pid, "VmRSS") }

// statusKiB returns a field in kB of /proc/<pid>/status, such as VmRSS or
// VmHWM (the peak resident set size), in KiB.
func statusKiB(pid, field string) (int64, error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	prefix := []byte(field + ":")
	for s.Scan() {
		if v, ok := bytes.CutPrefix(s.Bytes(), prefix); ok {
			fields := bytes.Fields(v)
			if len(fields) == 0 {
				break
			}
			return strconv.ParseInt(string(fields[0]), 10, 64)
		}
	}
	return 0, fmt.Errorf("harness: no %s in /proc/%s/status", field, pid)
}

// children lists this process's child processes: the pool's workers, when
// no other child runs.
func children() []int { return childrenOf("self") }

// childrenOf lists the child processes of process pid ("self" for this
// one).
func childrenOf(pid string) []int {
	var pids []int
	files, _ := filepath.Glob("/proc/" + pid + "/task/*/children")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(s); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	slices.Sort(pids)
	return slices.Compact(pids)
}

// procStat is what the harness reads from /proc/<pid>/stat.
type procStat struct {
	state     string        // "R", "S", "Z" for a zombie, ...
	cpu       time.Duration // utime + stime
	startTick uint64        // start time after boot, in clock ticks
	// exitSignal is the signal the parent gets when the process ends:
	// SIGCHLD for a process started by fork, vfork or exec.Cmd; 0 for a
	// child the Go runtime starts and ends at once to learn whether clone
	// takes CLONE_PIDFD. -1 when the field is missing.
	exitSignal int
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// The command name may hold spaces and parentheses; the fields after
	// its closing parenthesis start with field 3, the state.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return procStat{}, fmt.Errorf("harness: unreadable /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("harness: short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	start, _ := strconv.ParseUint(f[19], 10, 64)
	exitSignal := -1
	if len(f) > 35 {
		exitSignal, _ = strconv.Atoi(f[35]) // field 38
	}
	return procStat{state: f[0], cpu: time.Duration(utime+stime) * clockTick, startTick: start, exitSignal: exitSignal}, nil
}

// childrenCPU is the CPU time of the live children, by pid.
func childrenCPU() map[int]time.Duration {
	m := map[int]time.Duration{}
	for _, pid := range children() {
		if st, err := readStat(pid); err == nil {
			m[pid] = st.cpu
		}
	}
	return m
}

// cpuSince is the CPU the children in after used since before. A child
// that started in between counts from zero.
func cpuSince(before, after map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, c := range after {
		d += c - before[pid]
	}
	return d
}

// selfCPU is this process's user and system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// oldestChild returns the live child process that has been running
// longest: with two workers, the one that is not a replacement still
// starting up. A killed child that is not yet reaped is a zombie and is
// left out.
func oldestChild() (int, bool) {
	best, bestStart := 0, uint64(0)
	for _, pid := range children() {
		st, err := readStat(pid)
		if err != nil || st.state == "Z" {
			continue
		}
		if best == 0 || st.startTick < bestStart {
			best, bestStart = pid, st.startTick
		}
	}
	return best, best != 0
}
