package metrics

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// readRSS reads VmRSS from /proc/PID/status, in bytes. A process that
// ended between the snapshot and the read gives an error, and no gauge.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(v)
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseInt(string(f[0]), 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("metrics: no VmRSS in /proc/%d/status", pid)
}
