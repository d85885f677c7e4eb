#!/usr/bin/env python3
"""Benchmark of `nb2pipe check` over many notebooks (the pre-commit case).

Generates N notebooks (default 1,000; typical 20-cell pipelines, each a little
different), writes each one's bundle with `nb2pipe convert`, then times whole-process
`nb2pipe check` over all of them (tags linted, secrets scanned, every bundle regenerated
in memory and compared with disk). Prints median/min/max wall over RUNS runs.

    cargo build --release && python3 bench/check_bench.py [--notebooks 1000] [--runs 5]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from convert_bench import typical  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
from make_notebook import write  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--notebooks", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "nb2pipe"))
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.notebooks):
            p = os.path.join(tmp, "nb%04d.ipynb" % i)
            write(p, typical(20, seed=i))
            paths.append(p)
        # Bundles are committed next to the notebooks, as a team would.
        subprocess.run([binary, "check", "--fix", "--jobs", str(os.cpu_count() or 2)] + paths, check=True, stderr=subprocess.DEVNULL)
        walls = []
        for i in range(args.runs + 1):
            t0 = time.perf_counter()
            r = subprocess.run([binary, "check"] + paths, stderr=subprocess.PIPE, universal_newlines=True)
            wall = time.perf_counter() - t0
            if r.returncode != 0:
                sys.exit("check failed: " + r.stderr[-2000:])
            if i:
                walls.append(wall)
        print("nb2pipe check over %d notebooks (%d cores): median %.2f s (min %.2f, max %.2f); load average %.1f" % (
            args.notebooks, os.cpu_count() or 0, statistics.median(walls), min(walls), max(walls), os.getloadavg()[0]))


if __name__ == "__main__":
    main()
