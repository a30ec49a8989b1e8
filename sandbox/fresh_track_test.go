package sandbox_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/engine/wazero"
)

// TestFreshInstanceTracksWrites: a FreshInstance worker opens its
// userfaultfd, which has the kernel track the pages a task writes, before
// its seccomp filter denies the call, and its resets leave no state behind
// with it (TestFreshInstanceSharesNothing runs on such a worker). A worker
// with shared instances opens none. Skipped where this kernel refuses the
// userfaultfd (before Linux 6.7, or under a seccomp profile that denies
// it), where resets find the written pages without it.
func TestFreshInstanceTracksWrites(t *testing.T) {
	if !wazero.OpenWriteTracking() {
		t.Skip("the kernel refuses an asynchronous write-protect userfaultfd")
	}
	for _, fresh := range []bool{true, false} {
		t.Run(fmt.Sprintf("fresh=%v", fresh), func(t *testing.T) {
			wk := statefulWorker(t, fresh)
			require.Equal(t, "1 1", output(t, wk, "count", ""))
			require.Equal(t, fresh, holdsUserfaultfd(t, wk.PID()))
			require.Equal(t, map[bool]string{true: "1 1", false: "2 2"}[fresh], output(t, wk, "count", ""))
		})
	}
}

// holdsUserfaultfd reports whether process pid has a userfaultfd open.
func holdsUserfaultfd(t *testing.T, pid int) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, fd := range fds {
		if l, err := os.Readlink(dir + "/" + fd.Name()); err == nil && l == "anon_inode:[userfaultfd]" {
			return true
		}
	}
	return false
}
