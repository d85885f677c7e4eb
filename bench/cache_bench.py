"""Task caching: wall time of `nb2pipe run` on a five-task pipeline (load -> features ->
train -> evaluate -> report, numpy and scikit-learn) after each kind of edit, and which
tasks ran. The notebook is written to a fresh folder; every run shares one data store.

    python bench/cache_bench.py --nb2pipe target/release/nb2pipe --python PY [--runs 3]

PY needs numpy and scikit-learn (the "exec" test venv has them). Each scenario starts
from a run of the unedited notebook, then applies its edit and times the next run:
"cold" (empty cache), "no edit", "markdown edit" (a comment in a markdown cell), "last
task edited", "upstream edit, same bytes" (features' code rewritten, same output) and
"--rerun train". Prints a Markdown table: median wall time, the tasks that ran, and for
"last task edited" the task's own time from run.json."""
import argparse
import copy
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

CELLS = [
    ("markdown", [], "# Five tasks\nA small model, end to end."),
    ("code", ["imports"], "import numpy as np\nfrom sklearn.linear_model import LogisticRegression"),
    ("code", ["parameters"], "rows = 200000\nseed = 0"),
    ("code", ["task:load"], "rng = np.random.default_rng(seed)\nX = rng.normal(size=(rows, 20))\nw = rng.normal(size=20)\ny = (X @ w + rng.normal(size=rows) > 0).astype(int)\nprint('loaded', X.shape)"),
    ("code", ["task:features"], "Z = (X - X.mean(axis=0)) / X.std(axis=0)\nZ = np.hstack([Z, Z[:, :5] ** 2])\nprint('features', Z.shape)"),
    ("code", ["task:train"], "model = LogisticRegression(max_iter=300).fit(Z, y)\nprint('trained', model.n_iter_)"),
    ("code", ["task:evaluate"], "pred = model.predict(Z)\naccuracy = float((pred == y).mean())\nprint('accuracy', accuracy)"),
    ("code", ["task:report"], "print('REPORT accuracy=%.4f' % accuracy)"),
]


def notebook(cells):
    out = []
    for kind, tags, src in cells:
        c = {"cell_type": kind, "metadata": {"tags": tags} if tags else {}, "source": src}
        if kind == "code":
            c.update(outputs=[], execution_count=None)
        out.append(c)
    meta = {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}, "language_info": {"name": "python", "version": "3.11"}}
    return {"nbformat": 4, "nbformat_minor": 4, "metadata": meta, "cells": out}


def edited(i, src):
    cells = copy.deepcopy(CELLS)
    cells[i] = (cells[i][0], cells[i][1], src)
    return cells


SCENARIOS = [
    ("cold (empty cache)", None, []),
    ("no edit", CELLS, []),
    ("markdown edit", edited(0, "# Five tasks\nA small model, end to end. (reworded)"), []),
    ("last task edited", edited(7, "print('REPORT accuracy=%.3f' % accuracy)"), []),
    ("upstream edit, same bytes", edited(4, "mu, sd = X.mean(axis=0), X.std(axis=0)\nZ = (X - mu) / sd\nZ = np.hstack([Z, np.square(Z[:, :5])])\nprint('features', Z.shape)"), []),
    ("--rerun train", CELLS, ["--rerun", "train"]),
]


def run(args, folder, data, cells, extra):
    nb = os.path.join(folder, "five.ipynb")
    with open(nb, "w") as f:
        json.dump(notebook(cells), f)
    t0 = time.perf_counter()
    subprocess.run(
        [args.nb2pipe, "run", nb, "--python", args.python, "--data", data, "-o", os.path.join(folder, "build")] + extra,
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t0
    with open(os.path.join(data, "five", "latest")) as f:
        latest = f.read().strip()
    with open(os.path.join(data, "five", latest, "run.json")) as f:
        rec = json.load(f)
    ran = [t["name"] for t in rec["tasks"] if t["state"] == "succeeded"]
    own = {t["name"]: (t["ended_ms"] - t["started_ms"]) / 1000 for t in rec["tasks"]}
    return wall, ran, own


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nb2pipe", required=True)
    ap.add_argument("--python", required=True)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for name, cells, extra in SCENARIOS:
        walls, own_times, ran = [], [], None
        for _ in range(args.runs):
            folder = tempfile.mkdtemp(prefix="nb2pipe-cache-bench-")
            data = os.path.join(folder, "data")
            try:
                if cells is not None:
                    run(args, folder, data, CELLS, [])  # the cache, from the unedited notebook
                wall, ran, own = run(args, folder, data, cells or CELLS, extra)
                walls.append(wall)
                own_times.append(own["report"])
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        note = ""
        if name == "last task edited":
            note = "report's own time %.2f s" % statistics.median(own_times)
        rows.append((name, statistics.median(walls), ", ".join(ran) or "none", note))
    print("| scenario | wall (median of %d) | tasks that ran | note |" % args.runs)
    print("|---|---|---|---|")
    for name, wall, ran, note in rows:
        print("| %s | %.2f s | %s | %s |" % (name, wall, ran, note))


if __name__ == "__main__":
    main()
