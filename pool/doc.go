// Package pool runs WebAssembly task functions in a pool of worker processes
// and never hangs when a worker dies.
//
// A pool is made with [New] from a [Config] that names a module: a guest SDK
// module (see package guest) or any WASI command module. Each worker is a
// separate process that hosts a WebAssembly runtime, so a task that is
// SIGKILLed by the OOM killer, runs out of its memory cap or overruns its
// deadline costs one task, never the batch:
//
//	p, err := pool.New(context.Background(), pool.Config{Module: "square.wasm", Workers: 4})
//	if err != nil { ... }
//	defer p.Close()
//	results, err := p.Map(ctx, "square", inputs)
//
// [Pool.Map] returns one [Result] per input, in input order, each with a
// [Status]: ok, error, killed, memory_limit or timeout. The last three are
// "killed tasks"; what happens to them is the pool's [Policy]: [Skip] (the
// default) leaves the slot empty and goes on, [Abort] fails the map with a
// [*TaskError], [Retry] runs the task again with backoff, optionally with a
// larger memory cap or after waiting for free memory. [Pool.KilledTasks]
// lists every killed task with its input, cause and attempts.
//
// Only the task that was running when a worker died is blamed; tasks queued
// behind it are sent again without using up an attempt. A replacement worker
// starts at once (or a spare one, already started, takes over: see
// Config.Spares), and a module that keeps killing its workers trips a breaker
// instead of respawning forever.
//
// A Pool is safe for concurrent use: several maps may share it.
package pool
