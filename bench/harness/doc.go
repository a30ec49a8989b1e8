// Package harness measures safepool side by side with the systems it is
// meant to be compared with, on the same work and in one run:
//
//   - plain goroutines calling a native Go square: the absolute limit;
//   - wazero in-process, calling the same guest module through the same
//     guest ABI (safepool_alloc, safepool_call, safepool_batch and the
//     safepool.result import): the limit for WebAssembly without process
//     isolation;
//   - safepool itself, through package pool;
//   - Python's multiprocessing.Pool and ProcessPoolExecutor, through
//     bench/python/baseline.py, when python3 is installed.
//
// [Run] runs the scenarios (throughput, latency, kill recovery, start-up,
// chaos throughput, memory, a worker SIGKILLed mid-map, and the safepool
// command line over files of JSON Lines beside a Python script that does
// the same job) and returns [Results]; [WriteReport] renders them as Markdown with an SVG chart.
// Every comparison is also given as a ratio, because absolute figures from
// a shared, noisy machine move between runs while ratios taken in the same
// run hold much better.
//
// The program in bench/cmd/safepool-bench drives it; see bench/README.md.
//
// Worker processes are this binary re-executed: package pool's default.
// A program or test that uses this package therefore needs nothing else
// set up, but must not do work of its own before main runs.
package harness
