#!/usr/bin/env python3
"""What one page fault costs on this machine: touches each page of a fresh anonymous
mapping once and prints the time per page, less the cost of the same loop over pages
already touched. A convert's minor faults (`/usr/bin/time -f %R`) times this figure is
the share of its CPU time spent having fresh memory mapped in. Usage:

    python3 bench/fault_cost.py [--pages 25600] [--rounds 5]
"""
import argparse
import mmap
import statistics
import time


def per_page(pages):
    m = mmap.mmap(-1, pages * mmap.PAGESIZE)
    step = mmap.PAGESIZE
    t = time.perf_counter()
    for i in range(0, pages * step, step):
        m[i] = 1  # the first write to each page faults it in
    fresh = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(0, pages * step, step):
        m[i] = 2  # mapped already: the loop's own cost
    mapped = time.perf_counter() - t
    m.close()
    return (fresh - mapped) / pages * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=25600)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    costs = [per_page(args.pages) for _ in range(args.rounds)]
    print("page fault: median %.2f µs (min %.2f, max %.2f) over %d rounds of %d pages"
          % (statistics.median(costs), min(costs), max(costs), args.rounds, args.pages))


if __name__ == "__main__":
    main()
