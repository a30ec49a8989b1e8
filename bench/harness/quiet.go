package harness

import (
	"strconv"
	"strings"
	"time"
)

// quietIdle is the share of the machine's CPU time that must be idle
// before a measurement starts: on two cores, other processes may use at
// most about half a core.
const quietIdle = 0.75

// quietProbe is how long each look at the machine's idle time lasts.
const quietProbe = 300 * time.Millisecond

// waitQuiet waits, for at most Options.Quiet, until the machine is mostly
// idle, so that a measurement does not start in the middle of someone
// else's burst of work. It counts the measurements that started anyway on a
// busy machine. Only measurements that take turns between systems wait;
// the turns keep the comparison fair when the wait runs out.
func (b *bench) waitQuiet() {
	if b.opts.Quiet <= 0 {
		return
	}
	b.res.Quiet.Measurements++
	start := time.Now()
	defer func() { b.res.Quiet.Waited += time.Since(start) }()
	deadline := start.Add(min(b.opts.Quiet, b.opts.QuietBudget-b.res.Quiet.Waited))
	for {
		idle, ok := idleShare(quietProbe)
		if !ok || idle >= quietIdle {
			return
		}
		if time.Now().After(deadline) {
			b.res.Quiet.Busy++
			return
		}
	}
}

// idleShare is the share of CPU time, over all cores, that was idle during
// d, from /proc/stat.
func idleShare(d time.Duration) (float64, bool) {
	idle0, total0, ok := cpuTimes()
	if !ok {
		return 0, false
	}
	time.Sleep(d)
	idle1, total1, ok := cpuTimes()
	if !ok || total1 <= total0 {
		return 0, false
	}
	return float64(idle1-idle0) / float64(total1-total0), true
}

// cpuTimes returns the idle (idle + iowait) and total jiffies of all CPUs.
func cpuTimes() (idle, total uint64, ok bool) {
	line := firstLine("/proc/stat")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		// Fields: user nice system idle iowait irq softirq steal guest
		// guest_nice; guest time is already counted in user.
		if i >= 8 {
			break
		}
		total += v
		if i == 3 || i == 4 {
			idle += v
		}
	}
	return idle, total, true
}
