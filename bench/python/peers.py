#!/usr/bin/env python3
"""safepool's Python peers, measured for the safepool benchmark harness.

The peers are billiard (Celery's fork of multiprocessing), pebble and joblib
with its loky backend; the kill matrix and the memory-kill scenario also run
the standard library's multiprocessing.Pool and ProcessPoolExecutor. Prints
one JSON object on stdout. On Debian the peers come from

    apt-get install -y python3-pebble python3-billiard python3-joblib

and are seen by Debian's interpreter, /usr/bin/python3. The harness
(bench/harness) runs this script once per scenario with --only; by hand:

    /usr/bin/python3 bench/python/peers.py --only probe,kills

Scenarios:
  probe       which peers this interpreter can import, and their versions.
  throughput  square over range(n) with each peer's map, each with the best
              of a few chunk sizes, chosen on a tenth of n.
  latency     one task's round trip: billiard's apply, pebble's
              schedule().result(), loky's submit().result().
  startup     creating the pool until the first task's result, then closing.
  kills       the kill matrix: a map of slow squares on --workers workers,
              chunk size 1; the worker that starts task --victim is SIGKILLed
              while it runs it. Each system's map is given --hang-timeout
              after the kill before it is called hung.
  oom         the same map, with task --victim allocating past a memory
              budget: "rlimit" (RLIMIT_AS set in the worker, so the
              allocation fails) and "rss" (a watchdog in this process
              SIGKILLs a worker whose resident set grows past the budget, as
              the OOM killer would).
"""

import argparse
import contextlib
import functools
import glob
import json
import math
import multiprocessing
import os
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import concurrent.futures

PEERS = ("billiard", "pebble", "joblib")
INSTALL = "apt-get install -y python3-pebble python3-billiard python3-joblib"

# System names, as the harness's report shows them.
SYS_MP = "multiprocessing.Pool"
SYS_PPE = "ProcessPoolExecutor"
SYS_BILLIARD = "billiard"
SYS_PEBBLE = "pebble"
SYS_JOBLIB = "joblib (loky)"


def square(x):
    return x * x


def announce(d, x):
    """Records that this process started task x: the harness's only way to
    know which worker runs which task, the same for every pool."""
    with open(os.path.join(d, "%d-%d-%d" % (x, os.getpid(), time.monotonic_ns())), "w"):
        pass


def slow_square(x, d):
    announce(d, x)
    time.sleep(0.1)
    return x * x


_armed = False


def hog(mib, d, budget_mib, mode):
    """Allocates mib MiB, writing every page, and keeps it while it sleeps.
    With mode "rlimit" the first call in a process caps its address space at
    what it has plus budget_mib."""
    global _armed
    if mode == "rlimit" and not _armed:
        _armed = True
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (vm_kib("VmSize", os.getpid()) * 1024 + (budget_mib << 20), hard))
    announce(d, mib)
    chunks = [b"x" * (1 << 20) for _ in range(mib)]
    time.sleep(0.1)
    del chunks
    return mib


def vm_kib(field, pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


def probe(args):
    out = {}
    for name in PEERS:
        try:
            m = __import__(name)
            if name == "joblib":
                from joblib.externals import loky  # noqa: F401
            out[name] = {"version": getattr(m, "__version__", "?")}
        except Exception as e:  # a missing or broken package
            out[name] = {"missing": "%s: %s" % (type(e).__name__, e)}
    return out


def available():
    return {k for k, v in probe(None).items() if "version" in v}


# ---------------------------------------------------------------- throughput

def chunk_sizes(k, w):
    """The chunk sizes tried for k tasks on w workers: multiprocessing.Pool's
    default (k / 4w, rounded up), a quarter and a sixteenth of it, and 1,000."""
    return [max(1, -(-k // div)) for div in (4 * w, 16 * w, 64 * w)] + [min(k, 1000)]


def best_chunk(run, n, w):
    """Times run(m, chunk) on a tenth of n for each way of choosing the chunk
    size; returns the fastest way's chunk size for n, and every timing."""
    m = max(n // 10, 1)
    times = []
    for c in chunk_sizes(m, w):
        t = time.perf_counter()
        run(m, c)
        times.append(time.perf_counter() - t)
    best = times.index(min(times))
    return chunk_sizes(n, w)[best], ["%d: %.0f ms" % (c, 1e3 * t) for c, t in zip(chunk_sizes(m, w), times)]


def throughput(args):
    rows = []
    n, w = args.n, args.workers
    want = [i * i for i in range(n)]
    have = available()

    def measure(system, run, how):
        run(1000, 100)  # warm up
        chunk, tried = best_chunk(run, n, w)
        t = time.perf_counter()
        out = run(n, chunk)
        rows.append({"system": system, "tasks": n, "seconds": time.perf_counter() - t, "correct": out == want,
                     "note": "%s, chunk size %d, the fastest on %d tasks (%s)" % (how, chunk, max(n // 10, 1), ", ".join(tried))})

    if "billiard" in have:
        import billiard
        with billiard.Pool(w) as pool:
            measure(SYS_BILLIARD + " Pool.map", lambda m, c: pool.map(square, range(m), chunksize=c), "Pool(%d).map" % w)
    if "pebble" in have:
        import pebble
        with pebble.ProcessPool(max_workers=w) as pool:
            measure(SYS_PEBBLE + " ProcessPool.map", lambda m, c: list(pool.map(square, range(m), chunksize=c).result()),
                    "ProcessPool(%d).map" % w)
    if "joblib" in have:
        import joblib
        with joblib.parallel_backend("loky", n_jobs=w):
            def run(m, c):
                return joblib.Parallel(batch_size=c)(joblib.delayed(square)(i) for i in range(m))
            measure(SYS_JOBLIB + " Parallel", run, "Parallel(n_jobs=%d, batch_size=...)" % w)
    return rows


# ------------------------------------------------------------------- latency

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


def child_pids():
    """The PIDs of this process's children, from /proc, as the Go harness
    reads them (procfs.go): each thread's children file."""
    pids = []
    for path in glob.glob("/proc/self/task/*/children"):
        try:
            with open(path) as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            continue
    return sorted(pids)


@contextlib.contextmanager
def bounded(seconds, what):
    """Bounds a peer pool's whole life, teardown included: once seconds have
    passed, its worker processes are SIGKILLed so that a pool whose exit
    waits on a deadlocked worker (seen here: a billiard or pebble worker
    asleep on a lock for minutes while the pool's exit waited for it) ends
    and the harness goes on. The measurement itself is done by then; stderr
    says it happened."""
    def kill_children():
        pids = child_pids()
        sys.stderr.write("%s: still running after %gs; SIGKILL to its worker processes %s\n" % (what, seconds, pids))
        for pid in pids:
            kill(pid)
    t = threading.Timer(seconds, kill_children)
    t.daemon = True
    t.start()
    try:
        yield
    finally:
        t.cancel()


# Each latency peer's pool gets this long, start-up, samples and teardown.
LATENCY_BOUND = 120.0


def latency(args):
    rows, w, have = [], args.workers, available()
    if "billiard" in have:
        import billiard
        with bounded(LATENCY_BOUND, SYS_BILLIARD), billiard.Pool(w) as pool:
            def apply():
                assert pool.apply(square, (7,)) == 49
            rows.append(dict(system=SYS_BILLIARD + " Pool.apply", **timed(apply, args.latency_samples)))
    if "pebble" in have:
        import pebble
        with bounded(LATENCY_BOUND, SYS_PEBBLE), pebble.ProcessPool(max_workers=w) as pool:
            def schedule():
                assert pool.schedule(square, args=(7,)).result() == 49
            rows.append(dict(system=SYS_PEBBLE + " schedule", **timed(schedule, args.latency_samples)))
    if "joblib" in have:
        from joblib.externals import loky
        ex = loky.get_reusable_executor(max_workers=w)

        def submit():
            assert ex.submit(square, 7).result() == 49
        rows.append(dict(system=SYS_JOBLIB + " submit", **timed(submit, args.latency_samples)))
    return rows


# ------------------------------------------------------------------- startup

def startup(args):
    rows, w, have = [], args.workers, available()

    def starts(system, once):
        times = []
        for _ in range(args.starts):
            t = time.perf_counter()
            once(t, times)
        rows.append({"system": system, "times": times})

    if "billiard" in have:
        import billiard

        def once(t, times):
            pool = billiard.Pool(w)
            assert pool.apply(square, (7,)) == 49
            times.append(time.perf_counter() - t)
            pool.close()
            pool.join()
        starts(SYS_BILLIARD + " Pool", once)
    if "pebble" in have:
        import pebble

        def once(t, times):
            pool = pebble.ProcessPool(max_workers=w)
            assert pool.schedule(square, args=(7,)).result() == 49
            times.append(time.perf_counter() - t)
            pool.close()
            pool.join()
        starts(SYS_PEBBLE + " ProcessPool", once)
    if "joblib" in have:
        from joblib.externals import loky

        def once(t, times):
            ex = loky.ProcessPoolExecutor(max_workers=w)
            assert ex.submit(square, 7).result() == 49
            times.append(time.perf_counter() - t)
            ex.shutdown()
        starts(SYS_JOBLIB + " ProcessPoolExecutor", once)
    return rows


# ---------------------------------------------------- the kill matrix, and oom

class Pools:
    """Each system's map, driven the same way: start(fn, inputs) begins the
    map on a thread and returns at once; collect() (on that thread) returns
    one ("ok", value) or ("error", exception name) per input, or raises when
    the whole call fails; after() runs one more task; close() ends the pool
    even when it hangs."""

    def __init__(self, system, w):
        self.system, self.w = system, w
        if system == SYS_MP:
            self.pool = multiprocessing.Pool(w)
        elif system == SYS_BILLIARD:
            import billiard
            self.pool = billiard.Pool(w)
        elif system == SYS_PPE:
            self.pool = concurrent.futures.ProcessPoolExecutor(w)
        elif system == SYS_PEBBLE:
            import pebble
            self.pool = pebble.ProcessPool(max_workers=w)
        elif system == SYS_JOBLIB:
            import joblib
            self.pool = joblib.Parallel(n_jobs=w, backend="loky", batch_size=1)

    def collect(self, fn, inputs):
        s = self.system
        if s in (SYS_MP, SYS_BILLIARD):
            return [("ok", v) for v in self.pool.map_async(fn, inputs, chunksize=1).get()]
        if s == SYS_PPE:
            futures = [self.pool.submit(fn, x) for x in inputs]
            return [one(f.result) for f in futures]
        if s == SYS_PEBBLE:
            it = self.pool.map(fn, inputs, chunksize=1).result()
            return [one(lambda: next(it)) for _ in inputs]
        import joblib
        return [("ok", v) for v in self.pool(joblib.delayed(fn)(x) for x in inputs)]

    def after(self):
        s = self.system
        if s in (SYS_MP, SYS_BILLIARD):
            return self.pool.apply_async(square, (7,)).get(timeout=10)
        if s == SYS_PPE:
            return self.pool.submit(square, 7).result(timeout=10)
        if s == SYS_PEBBLE:
            return self.pool.schedule(square, args=(7,)).result(timeout=10)
        import joblib
        return self.pool([joblib.delayed(square)(7)])[0]

    def close(self):
        s = self.system
        if s in (SYS_MP, SYS_BILLIARD):
            self.pool.terminate()
        elif s == SYS_PPE:
            for p in list((self.pool._processes or {}).values()):
                kill(p.pid)
            self.pool.shutdown(wait=False, cancel_futures=True)
        elif s == SYS_PEBBLE:
            self.pool.stop()
            self.pool.join(timeout=10)


def one(get):
    try:
        return ("ok", get())
    except Exception as e:
        return ("error", type(e).__name__)


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def starts(d):
    """The (task, pid) of every task start announced so far."""
    out = []
    for name in os.listdir(d):
        x, pid, _ = name.split("-")
        out.append((int(x), int(pid)))
    return out


def wait_for(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.002)
    return None


def mid_map(system, args, fn, inputs, want, victim_input, trigger):
    """Runs one system's map of fn over inputs while trigger(d) makes a worker
    lose the task whose input is victim_input, and describes what happened."""
    d = tempfile.mkdtemp(prefix="safepool-peer-")
    fn = functools.partial(fn, d=d) if not isinstance(fn, tuple) else functools.partial(fn[0], d=d, **fn[1])
    pools = Pools(system, args.workers)
    box = {}

    def body():
        try:
            box["slots"] = pools.collect(fn, inputs)
        except Exception as e:
            box["error"] = type(e).__name__ + (": " + str(e).splitlines()[0] if str(e) else "")
            box["error_name"] = type(e).__name__

    t = time.perf_counter()
    th = threading.Thread(target=body, daemon=True)
    th.start()
    how = trigger(d)
    th.join(args.hang_timeout)
    row = {"system": system, "tasks": len(inputs), "seconds": time.perf_counter() - t, "kill": how or "no kill landed"}
    victim = inputs.index(victim_input)
    runs = sum(1 for x, _ in starts(d) if x == victim_input)
    row["retried"] = runs > 1
    if th.is_alive():
        row.update(outcome="hung", ok=0, in_order=False, named=False, lost=list(range(len(inputs))),
                   detail="no result %gs after the kill; without a timeout the caller waits forever" % args.hang_timeout)
    elif "error" in box:
        row.update(outcome="failed", ok=0, in_order=False, named=False, lost=list(range(len(inputs))),
                   error=box["error_name"], detail="the whole call raised %s" % box["error"])
    else:
        slots = box["slots"]
        ok = [i for i, (k, v) in enumerate(slots) if k == "ok" and v == want[i]]
        lost = [i for i in range(len(inputs)) if i not in ok]
        errors = sorted({v for k, v in slots if k == "error"})
        others_ok = all(i in ok for i in range(len(inputs)) if i != victim)
        row.update(outcome="completed" if others_ok else "failed", ok=len(ok), in_order=True, lost=lost, error="/".join(errors),
                   named=lost == [victim],
                   detail="%d of %d results%s" % (len(ok), len(inputs), "; %s raised %s" % (
                       "task %d" % lost[0] if len(lost) == 1 else "%d tasks" % len(lost), "/".join(errors)) if lost else ""))
    if row["outcome"] != "hung":
        try:
            row["after"] = "usable" if pools.after() == 49 else "wrong answer"
        except Exception as e:
            row["after"] = "unusable (%s)" % type(e).__name__
    else:
        row["after"] = "not tried (hung)"
    closer = threading.Thread(target=pools.close, daemon=True)
    closer.start()
    closer.join(15)
    shutil.rmtree(d, ignore_errors=True)
    return row


def systems():
    have = available()
    out = [SYS_MP, SYS_PPE]
    for name, system in (("billiard", SYS_BILLIARD), ("pebble", SYS_PEBBLE), ("joblib", SYS_JOBLIB)):
        if name in have:
            out.append(system)
    return out


def kills(args):
    n, v = args.tasks, args.victim
    inputs, want = list(range(n)), [i * i for i in range(n)]

    def trigger(d):
        pid = wait_for(lambda: next((p for x, p in starts(d) if x == v), None), 60)
        if pid is None:
            return None
        kill(pid)
        return "SIGKILL"
    return [mid_map(s, args, slow_square, inputs, want, v, trigger) for s in systems()]


def oom(args):
    n, v, budget = args.tasks, args.victim, args.budget_mib
    # Task v allocates three times the budget; the others a few MiB each,
    # their index, which is also what they return.
    big = 3 * budget
    inputs = [big if i == v else i for i in range(n)]
    rows = []
    for mode in ("rlimit", "rss"):
        def trigger(d):
            if mode == "rlimit":
                return "RLIMIT_AS" if wait_for(lambda: any(x == big for x, _ in starts(d)), 60) else None
            return rss_watchdog(d, budget, big)
        for s in systems():
            row = mid_map(s, args, (hog, {"budget_mib": budget, "mode": mode}), inputs, inputs, big, trigger)
            row["mode"] = mode
            rows.append(row)
    return rows


def rss_watchdog(d, budget, big):
    """Watches every worker seen starting a task, the way the OOM killer
    would: one whose resident set grows budget MiB past what it had when it
    was first seen is SIGKILLed. Returns once it has killed one."""
    base = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for _, pid in starts(d):
            if pid not in base:
                base[pid] = vm_kib("VmRSS", pid)
            rss = vm_kib("VmRSS", pid)
            if rss > base[pid] + (budget << 10):
                kill(pid)
                return "SIGKILL at %d MiB resident (+%d MiB)" % (rss >> 10, (rss - base[pid]) >> 10)
        time.sleep(0.001)
    return None


SCENARIOS = {"probe": probe, "throughput": throughput, "latency": latency, "startup": startup, "kills": kills, "oom": oom}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="probe", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--latency-samples", type=int, default=5000)
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--victim", type=int, default=3)
    ap.add_argument("--hang-timeout", type=float, default=8.0)
    ap.add_argument("--budget-mib", type=int, default=32)
    args = ap.parse_args()
    out = {"version": sys.version.split()[0], "executable": sys.executable, "install": INSTALL}
    for name in args.only.split(","):
        if name not in SCENARIOS:
            ap.error("unknown scenario %r" % name)
        out[name] = SCENARIOS[name](args)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
