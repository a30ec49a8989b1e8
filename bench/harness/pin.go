package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/safepool/safepool/pool"
)

// pinWorkers pins worker slot k of p to the k-th CPU this process may run
// on (round robin): every thread of the slot's worker process, and so the
// threads it starts later, which inherit the mask. The metrics scenario
// pins each of its pools the same way, so that the pools do not differ by
// where the scheduler happened to place their workers, which otherwise
// moves a pool's CPU time per task by up to ±10% for its whole life. It
// returns the workers' PIDs, slot by slot.
func pinWorkers(p *pool.Pool) ([]int, error) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return nil, fmt.Errorf("pin workers: read this process's CPUs: %w", err)
	}
	var cpus []int
	for c := range 1024 {
		if allowed.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("pin workers: this process may run on no CPU")
	}
	pids := p.Snapshot().Workers
	for k, pid := range pids {
		if pid == 0 {
			return nil, fmt.Errorf("pin workers: worker slot %d has no live worker", k)
		}
		var set unix.CPUSet
		set.Set(cpus[k%len(cpus)])
		tids, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*")
		if len(tids) == 0 {
			return nil, fmt.Errorf("pin workers: worker %d has no threads in /proc", pid)
		}
		for _, t := range tids {
			tid, err := strconv.Atoi(filepath.Base(t))
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil {
				return nil, fmt.Errorf("pin workers: worker %d thread %d to CPU %d: %w", pid, tid, cpus[k%len(cpus)], err)
			}
		}
	}
	return pids, nil
}

// runtimeOf returns a reader of the CPU time the processes pids have run,
// the sum over their threads of the first field of
// /proc/PID/task/TID/schedstat, in nanoseconds: the workers of one pool,
// without those of the pools that wait meanwhile (which may still be
// polling their pipes). /proc/PID/stat counts clock ticks of 10 ms, as
// much as a worker's share of a whole round here.
func runtimeOf(pids []int) func() map[int]time.Duration {
	return func() map[int]time.Duration {
		m := map[int]time.Duration{}
		for _, pid := range pids {
			files, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/schedstat")
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					continue
				}
				if ns, err := strconv.ParseInt(strings.Fields(string(b) + " 0")[0], 10, 64); err == nil {
					m[pid] += time.Duration(ns)
				}
			}
		}
		return m
	}
}
