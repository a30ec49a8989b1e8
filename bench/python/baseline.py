#!/usr/bin/env python3
"""Python process-pool baselines for the safepool benchmark harness.

Measures multiprocessing.Pool and concurrent.futures.ProcessPoolExecutor on
the work the harness gives safepool, and prints one JSON object on stdout.
Standard library only. The harness (bench/harness) runs it once per scenario
with --only, so that each Python figure is taken next to the safepool one it
is compared with; it can also be run by hand:

    python3 bench/python/baseline.py --only throughput,latency --n 1000000

Scenarios:
  throughput  Pool.map(square, range(n)) with the default chunksize, the same
              with chunksize=1 over --chunk1-n tasks, and
              ProcessPoolExecutor.map with Pool's default chunksize (its own
              default, 1, would take minutes for a million tasks).
  latency     Pool.apply and ProcessPoolExecutor.submit().result() round
              trips: p50, p99, max, mean, and every sample (raw, sorted).
  startup     creating the pool until the first task's result, then closing.
  memory      VmRSS of each idle Pool worker.

What these pools do when a worker is killed is measured by peers.py, beside
the other Python pools.
"""

import argparse
import concurrent.futures
import json
import math
import multiprocessing
import os
import statistics
import sys
import time


def square(x):
    return x * x



def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


def default_chunksize(n, workers):
    # multiprocessing.Pool._map_async: divmod(len, 4 * processes), rounded up.
    chunk, extra = divmod(n, workers * 4)
    return chunk + 1 if extra else chunk


def throughput(args):
    rows = []
    n, w = args.n, args.workers
    want = [i * i for i in range(n)]
    with multiprocessing.Pool(w) as pool:
        pool.map(square, range(1000))  # warm up
        t = time.perf_counter()
        out = pool.map(square, range(n))
        rows.append({"system": "Python Pool.map", "tasks": n, "seconds": time.perf_counter() - t,
                     "correct": out == want, "note": "chunksize %d (the default)" % default_chunksize(n, w)})
        m = min(args.chunk1_n, n)
        t = time.perf_counter()
        out = pool.map(square, range(m), chunksize=1)
        rows.append({"system": "Python Pool.map chunksize=1", "tasks": m, "seconds": time.perf_counter() - t,
                     "correct": out == want[:m], "note": "chunksize 1: one pickle round trip per task"})
    chunk = default_chunksize(n, w)
    with concurrent.futures.ProcessPoolExecutor(w) as ex:
        list(ex.map(square, range(1000)))  # warm up
        t = time.perf_counter()
        out = list(ex.map(square, range(n), chunksize=chunk))
        rows.append({"system": "Python ProcessPoolExecutor.map", "tasks": n, "seconds": time.perf_counter() - t,
                     "correct": out == want, "note": "chunksize %d (Pool's default; its own default is 1)" % chunk})
    return rows


def timed(fn, samples):
    for _ in range(max(samples // 10, 10)):
        fn()
    lat = []
    for _ in range(samples):
        t = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t)
    lat.sort()
    return {"samples": samples, "p50": percentile(lat, 50), "p99": percentile(lat, 99),
            "max": lat[-1], "mean": statistics.fmean(lat), "raw": lat}


def latency(args):
    rows = []
    with multiprocessing.Pool(args.workers) as pool:
        def apply():
            assert pool.apply(square, (7,)) == 49
        rows.append(dict(system="Python Pool.apply", **timed(apply, args.latency_samples)))
    with concurrent.futures.ProcessPoolExecutor(args.workers) as ex:
        def submit():
            assert ex.submit(square, 7).result() == 49
        rows.append(dict(system="Python ProcessPoolExecutor.submit", **timed(submit, args.latency_samples)))
    return rows


def startup(args):
    rows = []
    times = []
    for _ in range(args.starts):
        t = time.perf_counter()
        pool = multiprocessing.Pool(args.workers)
        assert pool.apply(square, (7,)) == 49
        times.append(time.perf_counter() - t)
        pool.close()
        pool.join()
    rows.append({"system": "Python Pool", "times": times})
    times = []
    for _ in range(args.starts):
        t = time.perf_counter()
        ex = concurrent.futures.ProcessPoolExecutor(args.workers)
        assert ex.submit(square, 7).result() == 49
        times.append(time.perf_counter() - t)
        ex.shutdown()
    rows.append({"system": "Python ProcessPoolExecutor", "times": times})
    return rows


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def memory(args):
    with multiprocessing.Pool(args.workers) as pool:
        pool.map(square, range(1000))
        time.sleep(0.3)
        # Pool keeps its worker processes in the private _pool list.
        return {"system": "Python Pool", "kib": [rss_kib(p.pid) for p in pool._pool]}


SCENARIOS = {"throughput": throughput, "latency": latency, "startup": startup, "memory": memory}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--chunk1-n", type=int, default=20_000)
    ap.add_argument("--latency-samples", type=int, default=5000)
    ap.add_argument("--starts", type=int, default=5)
    args = ap.parse_args()
    out = {"version": sys.version.split()[0], "start_method": multiprocessing.get_start_method()}
    for name in args.only.split(","):
        if name not in SCENARIOS:
            ap.error("unknown scenario %r" % name)
        out[name] = SCENARIOS[name](args)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
