// Package proc starts, hardens and reaps worker processes, and tells how each
// one ended.
//
// The host side is [Start]; it returns a [Process]. The worker side is
// [Child], called by the worker's entry point.
//
// A worker gets exactly three descriptors beyond stdio: the pipe it reads
// frames from (fd 3), the pipe it writes frames to (fd 4), and a small shared
// memory page (fd 5), the [Slot], where it records which task is running and
// since when, with two atomic stores per task and no write to a pipe. The
// host reads it after the worker dies, to blame exactly the task that was
// running, and while the worker lives, to notice a task past its deadline.
//
// [Child] hardens the worker as it starts (no new privileges, no core dumps);
// [LimitMemory] and [Confine] (a seccomp filter that forbids starting
// processes, sockets and other calls a worker never needs) finish the job
// before the worker runs guest code. SECURITY.md at the repository root
// describes every layer.
//
// By default a worker re-executes the current binary with [WorkerArg] as its
// only argument; the sandbox package recognises that argument before main
// runs, so user programs and test binaries need no extra executable.
package proc
