package proc

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// WorkerArg is the argument that marks a re-executed binary as a worker.
const WorkerArg = "__safepool_worker__"

// IsWorker reports whether this process was started by Start with the default
// arguments.
func IsWorker() bool { return len(os.Args) == 2 && os.Args[1] == WorkerArg }

// ChildEnd is the worker's side of the connection.
type ChildEnd struct {
	In   *os.File // frames from the host
	Out  *os.File // frames to the host
	Slot *Slot
}

// Child opens the descriptors Start passed to this process and hardens it:
// no new privileges (so no setuid binary can raise them) and no core dumps.
func Child() (*ChildEnd, error) {
	var st unix.Stat_t
	for fd := 3; fd <= 5; fd++ {
		if err := unix.Fstat(fd, &st); err != nil {
			return nil, ErrNotWorker
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("proc: set no_new_privs: %w", err)
	}
	_ = unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	slot, err := mapSlot(5)
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(3)
	unix.CloseOnExec(4)
	// Non-blocking, so the runtime's poller waits on the pipes instead of
	// parking a thread in read(2).
	_ = unix.SetNonblock(3, true)
	_ = unix.SetNonblock(4, true)
	_ = unix.Close(5)
	return &ChildEnd{In: os.NewFile(3, "safepool-in"), Out: os.NewFile(4, "safepool-out"), Slot: slot}, nil
}

// LimitMemory caps the process's address space (RLIMIT_AS) at n bytes. It is
// the backstop for memory the guest's linear-memory cap does not cover, such
// as a leak in the worker itself: past it the Go runtime fails to map memory
// and the process exits, which the host reports as killed.
func LimitMemory(n uint64) error {
	if n == 0 {
		return nil
	}
	if err := unix.Setrlimit(unix.RLIMIT_AS, &unix.Rlimit{Cur: n, Max: n}); err != nil {
		return fmt.Errorf("proc: set RLIMIT_AS to %d: %w", n, err)
	}
	return nil
}
