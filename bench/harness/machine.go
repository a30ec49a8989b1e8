package harness

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Machine describes where a run happened.
type Machine struct {
	CPU       string // model name from /proc/cpuinfo
	Cores     int    // runtime.NumCPU
	Memory    string // MemTotal from /proc/meminfo
	Kernel    string
	GoVersion string
	Date      time.Time
	// LoadStart and LoadEnd are /proc/loadavg before and after the run: a
	// busy machine explains noisy figures.
	LoadStart, LoadEnd string
	// Revision is the git commit of the working directory, marked when
	// the tree has changes; empty outside a git checkout.
	Revision string
}

func readMachine() Machine {
	m := Machine{
		CPU:       procField("/proc/cpuinfo", "model name"),
		Cores:     runtime.NumCPU(),
		Memory:    procField("/proc/meminfo", "MemTotal"),
		Kernel:    firstLine("/proc/sys/kernel/osrelease"),
		GoVersion: runtime.Version(),
		Date:      time.Now(),
		LoadStart: loadAvg(),
		Revision:  gitRevision(),
	}
	if m.CPU == "" {
		m.CPU = "unknown"
	}
	return m
}

// procField returns the value of the first "key: value" line of a /proc
// file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func firstLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}

// loadAvg returns the 1, 5 and 15 minute load averages.
func loadAvg() string {
	f := strings.Fields(firstLine("/proc/loadavg"))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func gitRevision() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		rev += " with uncommitted changes"
	}
	return rev
}
