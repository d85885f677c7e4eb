#!/usr/bin/env python3
"""Whole-process benchmark of `nb2pipe convert`: wall time and peak RSS.

Generates three notebooks (10 cells, 300 cells, ~50 MB mostly image outputs) in a temp
folder, runs the release binary on each RUNS times (after one warm-up) and prints the
median and min/max wall time (measured from Python around the process itself, so it
includes starting and ending it) and the peak resident set size of the process (GNU time's
%M, from separate runs, so the wall time does not carry `time`'s own start; `apt-get
install time`). The last line gives the same wall time for `/bin/true`: what starting any
process costs from this script. Beside it, the same for
`nb2pipe inspect` (reads the notebook and builds the plan, writes nothing): the floor
convert is measured against. `--instructions` adds the instructions each process
executes, counted by valgrind's callgrind: unlike wall time, that count does not depend on
the machine's load. `--vs OTHER` compares two builds instead: their converts run in
turn, A B A B ..., and each pair's ratio A/B is taken, so the comparison holds while the
machine's speed drifts; it prints both medians and the median ratio. Each build is
timed from a fresh copy of its file, as installing it (cargo install, unpacking a
release) writes one: the file a linker writes runs up to a fifth slower on this machine
(docs/benchmarks.md, ninth round), so without the copy two builds would differ by how
their files were made. Usage:

    cargo build --release && python3 bench/convert_bench.py [--runs 20] [--instructions] [--bin target/release/nb2pipe]
    python3 bench/convert_bench.py --runs 60 --bin NEW --vs OLD
"""
import argparse
import base64
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
from make_notebook import cell, notebook, write  # noqa: E402


def typical(n_cells, seed=1):
    """A pipeline of n_cells code cells: imports, parameters, then tasks of 3 cells each."""
    rng = random.Random(seed)
    cells = [
        cell("import numpy as np\nimport pandas as pd\nfrom sklearn.linear_model import LinearRegression", ["imports"]),
        cell("alpha = 0.5\nn_rows = 1000\nlabel = 'run'", ["parameters"]),
    ]
    prev = None
    i = 0
    while len(cells) < n_cells:
        name = "step_%d" % i
        src_in = prev or "np.zeros(n_rows)"
        cells.append(cell("v%d = %s * alpha + %d\nframe%d = pd.DataFrame({'x': v%d})" % (i, src_in, rng.randint(0, 9), i, i), ["task:" + name, "cpu:500m", "memory:1Gi"]))
        cells.append(cell("for k in range(3):\n    v%d = v%d + k\nstats%d = {'mean': float(np.mean(v%d)), 'label': label}" % (i, i, i, i)))
        cells.append(cell("model%d = LinearRegression()\nprint(stats%d)" % (i, i)))
        prev = "v%d" % i
        i += 1
    return notebook(cells[:n_cells])


def heavy(target_mb=50):
    """A small pipeline whose cells carry ~target_mb of base64 PNG outputs."""
    blob = base64.b64encode(os.urandom(3 * 1024 * 1024)).decode()  # 4 MiB of base64 per output
    out = [{"output_type": "display_data", "data": {"image/png": blob, "text/plain": ["<Figure>"]}, "metadata": {}}]
    n = max(1, (target_mb * 1024 * 1024) // len(blob))
    nb = typical(12)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for k in range(n):
        code[2 + k % (len(code) - 2)]["outputs"].extend(out)
    return nb


def command(binary, what, nb_path, out_dir):
    if what == "convert":
        return [binary, "convert", nb_path, "-o", out_dir]
    return [binary, "inspect", nb_path]


def instructions(binary, what, nb_path, out_dir):
    """Instructions executed by one process (callgrind's `Collected`)."""
    p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + command(binary, what, nb_path, out_dir),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True)
    for line in p.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1])
    sys.exit("valgrind gave no count for %s: %s" % (nb_path, p.stderr[-2000:]))


def measure(binary, what, nb_path, out_dir, runs):
    """Wall time of the process alone, from here; peak RSS from GNU time in separate
    runs (a Python parent's own memory would count in the child's ru_maxrss before exec,
    and timing through `time` would add its own fork and exec to every figure)."""
    walls, rss = [], []
    cmd = command(binary, what, nb_path, out_dir)
    for i in range(runs + 1):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            sys.exit("%s failed on %s: %s" % (what, nb_path, p.stderr))
        if i:  # the first run warms the page cache
            walls.append(wall * 1000)
    for _ in range(RSS_RUNS):
        p = subprocess.run([TIME, "-f", "%M"] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True)
        rss.append(int(p.stderr.strip().splitlines()[-1]) / 1024)
    return walls, rss


def paired(a, b, nb_path, out_dir, runs):
    """Wall times of `convert` by builds a and b run in turn (after one warm-up pair),
    each into its own folder, and the ratio a/b of each pair."""
    ta, tb = [], []
    cmds = [command(x, "convert", nb_path, os.path.join(out_dir, k)) for x, k in ((a, "a"), (b, "b"))]
    for i in range(runs + 1):
        pair = []
        for cmd in cmds:
            t0 = time.perf_counter()
            p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True)
            pair.append((time.perf_counter() - t0) * 1000)
            if p.returncode != 0:
                sys.exit("%s failed on %s: %s" % (cmd[0], nb_path, p.stderr))
        if i:
            ta.append(pair[0])
            tb.append(pair[1])
    return ta, tb, [x / y for x, y in zip(ta, tb)]


def spawn_floor(runs):
    """Median wall time of `/bin/true` started the way `measure` starts nb2pipe."""
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(["/bin/true"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        walls.append((time.perf_counter() - t0) * 1000)
    return statistics.median(walls)


RSS_RUNS = 5
TIME = "/usr/bin/time"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--instructions", action="store_true", help="also count instructions with valgrind (callgrind)")
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "nb2pipe"))
    ap.add_argument("--vs", metavar="OTHER", help="a second build: convert wall times of both in turn, and their ratio")
    args = ap.parse_args()
    if args.vs:
        return compare(os.path.abspath(args.bin), os.path.abspath(args.vs), args.runs)
    if not os.path.exists(TIME):
        sys.exit("needs GNU time: apt-get install time")
    binary = os.path.abspath(args.bin)
    if not os.path.exists(binary):
        sys.exit("build first: cargo build --release (looked for %s)" % binary)
    with tempfile.TemporaryDirectory() as tmp:
        binary = installed(binary, tmp, "nb2pipe")
        cases = [("10 cells", typical(10)), ("300 cells", typical(300)), ("50 MB outputs", heavy(50))]
        extra = " convert instructions | inspect instructions |" if args.instructions else ""
        print("| notebook | size | tasks | convert wall median (min–max) | inspect wall median (min–max) | convert peak RSS median (max) |" + extra)
        print("|---|---|---|---|---|---|" + ("---|---|" if args.instructions else ""))
        for label, nb in cases:
            path = os.path.join(tmp, label.replace(" ", "_") + ".ipynb")
            write(path, nb)
            size = os.path.getsize(path)
            tasks = sum(1 for c in nb["cells"] if any(t.startswith("task:") for t in c["metadata"].get("tags", [])))
            out = os.path.join(tmp, "out")
            walls, rss = measure(binary, "convert", path, out, args.runs)
            floor, _ = measure(binary, "inspect", path, out, args.runs)
            row = "| %s | %s | %d | %.1f ms (%.1f–%.1f) | %.1f ms (%.1f–%.1f) | %.1f MB (%.1f) |" % (
                label, "%.1f MB" % (size / 1e6) if size > 1e6 else "%.0f kB" % (size / 1e3), tasks,
                statistics.median(walls), min(walls), max(walls),
                statistics.median(floor), min(floor), max(floor), statistics.median(rss), max(rss))
            if args.instructions:
                row += " %s | %s |" % tuple("{:,}".format(instructions(binary, w, path, out)) for w in ("convert", "inspect"))
            print(row, flush=True)
        print("load average: %.1f %.1f %.1f; `/bin/true` started the same way: %.2f ms" % (os.getloadavg() + (spawn_floor(args.runs),)))


def installed(binary, tmp, name):
    """A fresh copy of `binary` in `tmp`, written the way an install writes it."""
    path = os.path.join(tmp, name)
    shutil.copyfile(binary, path)
    os.chmod(path, 0o755)
    return path


def compare(a, b, runs):
    for x in (a, b):
        if not os.path.exists(x):
            sys.exit("no such build: %s" % x)
    with tempfile.TemporaryDirectory() as tmp:
        print("A = %s, B = %s; convert wall time, %d pairs" % (a, b, runs))
        a, b = installed(a, tmp, "nb2pipe-a"), installed(b, tmp, "nb2pipe-b")
        print("| notebook | A median (min–max) | B median (min–max) | A/B per pair, median (min–max) |")
        print("|---|---|---|---|")
        for label, nb in [("10 cells", typical(10)), ("300 cells", typical(300)), ("50 MB outputs", heavy(50))]:
            path = os.path.join(tmp, label.replace(" ", "_") + ".ipynb")
            write(path, nb)
            ta, tb, r = paired(a, b, path, tmp, runs)
            print("| %s | %.1f ms (%.1f–%.1f) | %.1f ms (%.1f–%.1f) | %.3f (%.3f–%.3f) |" % (
                label, statistics.median(ta), min(ta), max(ta), statistics.median(tb), min(tb), max(tb),
                statistics.median(r), min(r), max(r)), flush=True)
        print("load average: %.1f %.1f %.1f" % os.getloadavg())


if __name__ == "__main__":
    main()
