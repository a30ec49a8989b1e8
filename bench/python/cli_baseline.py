#!/usr/bin/env python3
"""What `safepool run` does, in Python: JSON Lines in, square on a process pool, JSON Lines out.

    python3 bench/python/cli_baseline.py WORKERS IN OUT
"""
import json
import multiprocessing
import sys


def square(x):
    return x * x


if __name__ == "__main__":
    workers, src, dst = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    with open(src) as f:
        xs = [json.loads(line) for line in f]
    with multiprocessing.Pool(workers) as pool:
        ys = pool.map(square, xs)
    with open(dst, "w") as f:
        f.writelines(json.dumps(y) + "\n" for y in ys)
