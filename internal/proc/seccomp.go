package proc

import (
	"fmt"
	"os"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/sys/unix"
)

// Confine installs the worker's seccomp filter on every thread of the
// process, for good: threads started later inherit it. A worker calls it
// after its last set-up step that the filter forbids (LimitMemory) and
// before it runs any guest code.
//
// The filter is defence in depth. A guest cannot reach any of these calls
// through WASI; they matter only if a guest breaks out of the WebAssembly
// sandbox into the worker's native code, or if the worker has a bug. It is a
// deny list: everything a Go program and a JIT compiler need stays allowed,
// and the calls below fail with EPERM (clone3 with ENOSYS, so that callers
// fall back to clone, whose flags the filter can see):
//
//   - starting programs or processes: execve, execveat, fork, vfork, clone
//     without CLONE_THREAD (the Go runtime's own threads pass), clone3;
//   - touching other processes: ptrace, process_vm_readv/writev, kcmp,
//     pidfd_open, pidfd_getfd, tkill, and kill or tgkill aimed at any
//     process but this one (the Go runtime signals only itself);
//   - the network: socket and socketpair (the worker's only channels are
//     the pipes it inherited);
//   - raising its own limits back: setrlimit, and prlimit64 that sets a limit;
//   - the kernel's riskier surfaces: bpf, perf_event_open, userfaultfd,
//     io_uring, keyrings, modules, kexec, mounts and namespaces,
//     open_by_handle_at, and the like.
//
// On a kernel without seccomp Confine does nothing and returns nil; the
// other layers (the WebAssembly sandbox, no_new_privs, rlimits) still hold.
//
// # Errors
//
// Confine returns an error, prefixed "proc: ", when the kernel supports
// seccomp but refused the filter.
func Confine() error {
	if !seccomp.Supported() {
		return nil
	}
	if err := seccomp.LoadFilter(workerFilter(os.Getpid())); err != nil {
		return fmt.Errorf("proc: install the seccomp filter: %w", err)
	}
	return nil
}

// workerFilter is the filter Confine installs in process self.
func workerFilter(self int) seccomp.Filter {
	deny := seccomp.ActionErrno // EPERM
	notSelf := []seccomp.Condition{{Argument: 0, Operation: seccomp.NotEqual, Value: uint64(self)}}
	return seccomp.Filter{
		NoNewPrivs: true,
		Flag:       seccomp.FilterFlagTSync,
		Policy: seccomp.Policy{
			DefaultAction: seccomp.ActionAllow,
			Syscalls: []seccomp.SyscallGroup{
				{
					// clone3 passes its flags in memory, where a filter cannot
					// look. ENOSYS makes libraries fall back to clone.
					Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS),
					Names:  []string{"clone3"},
				},
				{
					Action: deny,
					Names: []string{
						// Programs and processes.
						"execve", "execveat", "fork", "vfork",
						// Other processes.
						"ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
						"pidfd_open", "pidfd_getfd", "tkill",
						// The network.
						"socket", "socketpair",
						// Limits.
						"setrlimit",
						// Kernel surfaces a worker never needs.
						"bpf", "perf_event_open", "userfaultfd",
						"io_uring_setup", "io_uring_enter", "io_uring_register",
						"add_key", "request_key", "keyctl",
						"init_module", "finit_module", "delete_module",
						"kexec_load", "kexec_file_load", "reboot",
						"mount", "umount2", "pivot_root", "chroot", "setns", "unshare",
						"open_by_handle_at", "name_to_handle_at",
						"swapon", "swapoff", "acct", "quotactl", "syslog",
						"iopl", "ioperm", "personality",
						"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
					},
					NamesWithCondtions: []seccomp.NameWithConditions{
						// A new process: clone without CLONE_THREAD.
						{Name: "clone", Conditions: []seccomp.Condition{
							{Argument: 0, Operation: seccomp.BitsNotSet, Value: unix.CLONE_THREAD},
						}},
						// prlimit64(pid, resource, new, old) with a new limit.
						{Name: "prlimit64", Conditions: []seccomp.Condition{
							{Argument: 2, Operation: seccomp.NotEqual, Value: 0},
						}},
						// Signals to anyone else: kill(pid, sig), tgkill(tgid, tid, sig).
						{Name: "kill", Conditions: notSelf},
						{Name: "tgkill", Conditions: notSelf},
					},
				},
			},
		},
	}
}
