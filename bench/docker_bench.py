#!/usr/bin/env python3
"""Benchmark of `nb2pipe build` (not a timed test): cold build time and image size per
task against one all-in-one image of the same notebook, the time of a no-change rebuild
and of a one-cell-change rebuild. Needs the services of tests/env/docker.sh:

    eval "$(bash tests/env/docker.sh)"
    cargo build --release
    python3 bench/docker_bench.py [--nb2pipe target/release/nb2pipe]

The notebook is generated: 5 tasks, two light requirements shared by two tasks each.
Cold builds use --no-cache: no layer comes from the engine's cache, so each task also
installs its own requirements (a normal build shares them between tasks with the same
requirements); the all-in-one image is built with `docker build --no-cache` from a Dockerfile
of the same shape holding every task's code and the union of the requirements.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

CELLS = [
    (["parameters"], "n = 1000\n"),
    (["task:load"], "raw = list(range(n))\n"),
    (["task:features"], "import six\nfeats = [six.text_type(x) for x in raw]\n"),
    (["task:table"], "import tabulate\ntable = tabulate.tabulate([[len(feats)]])\n"),
    (["task:score"], "import six\nscore = sum(len(f) for f in feats)\nprint(six.text_type(score))\n"),
    (["task:report"], "import tabulate\nprint(tabulate.tabulate([[score, table]]))\n"),
]


def notebook(path, cells):
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python", "version": "3.11.2"},
        },
        "cells": [
            {"cell_type": "code", "id": "c%d" % i, "metadata": {"tags": t}, "execution_count": None,
             "outputs": [], "source": s}
            for i, (t, s) in enumerate(cells)
        ],
    }
    with open(path, "w") as f:
        json.dump(nb, f, indent=1)


def timed(cmd, **kw):
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit("failed: %s\n%s\n%s" % (" ".join(cmd), p.stdout, p.stderr))
    return time.monotonic() - t, p.stderr


def size(ref):
    out = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", ref],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip())


def all_in_one(work, cert):
    """The build context of one image for the whole bundle in WORK/out/bench: the union
    of the tasks' requirements and every task's folder, FROM the same base and runtime."""
    plan = json.load(open(os.path.join(work, "out/bench/plan.json")))
    aio = os.path.join(work, "aio")
    os.makedirs(aio)
    reqs = sorted({r["line"] for t in plan["tasks"] for r in t["requirements"]})
    with open(os.path.join(aio, "requirements.txt"), "w") as f:
        f.write("".join(r + "\n" for r in reqs))
    shutil.copy(cert, os.path.join(aio, "nb2pipe-pip-cert.pem"))
    with open(os.path.join(aio, "nb2pipe-pip.conf"), "w") as f:
        f.write("[global]\ncert = /nb2pipe-build/nb2pipe-pip-cert.pem\n")
    for t in plan["tasks"]:
        shutil.copytree(os.path.join(work, "out/bench/tasks", t["name"]),
                        os.path.join(aio, "tasks", t["name"]))
    shutil.copy(os.path.join(work, "out/bench/tasks/load/nb2pipe_runtime.py"), aio)
    df = open(os.path.join(work, "out/bench/tasks/load/Dockerfile")).read()
    task_copy = "COPY --chown=10001:10001 main.py /app/main.py"
    if task_copy not in df:
        sys.exit("the task Dockerfile no longer has `%s`: update all_in_one()" % task_copy)
    with open(os.path.join(aio, "Dockerfile"), "w") as f:
        f.write(df.replace(task_copy, "COPY --chown=10001:10001 tasks/ /app/tasks/"))
    return aio


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nb2pipe", default="target/release/nb2pipe")
    ap.add_argument("--runs", type=int, default=5, help="runs of the no-change rebuild")
    a = ap.parse_args()
    base = os.environ["NB2PIPE_TEST_BASE_IMAGE"]
    reg = "%s/bench-%x" % (os.environ["NB2PIPE_TEST_REGISTRY"], time.time_ns())
    cert = os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
    work = tempfile.mkdtemp(prefix="nb2pipe-bench-")
    nb = os.path.join(work, "bench.ipynb")
    notebook(nb, CELLS)
    build = [a.nb2pipe, "build", nb, "-o", os.path.join(work, "out"), "--registry", reg,
             "--base-image", base, "--pip-cert", cert, "--jobs", "2"]

    cold, _ = timed(build + ["--no-cache"])
    plan = json.load(open(os.path.join(work, "out/bench/plan.json")))
    base_size = size(base)
    per_task = {t["name"]: size(t["image"]["reference"]) for t in plan["tasks"]}

    noop = sorted(timed(build)[0] for _ in range(a.runs))

    cells = list(CELLS)
    cells[5] = (cells[5][0], cells[5][1].replace("score, table", "table, score"))
    notebook(nb, cells)
    one_cell, err = timed(build)
    rebuilt = [l.split(":")[0] for l in err.splitlines() if ": built in " in l]

    # All-in-one: the union of requirements and every task's code in one image.
    aio = all_in_one(work, cert)
    aio_tag = "nb2pipe-bench/all-in-one:%x" % time.time_ns()
    aio_time, _ = timed(["docker", "build", "--no-cache", "-q", "-t", aio_tag, aio],
                        env=dict(os.environ, DOCKER_BUILDKIT="0"))
    aio_size = size(aio_tag)

    mb = lambda b: "%.1f MB" % (b / 1e6)
    print("base image %s: %s" % (base, mb(base_size)))
    print("per-task cold build (--no-cache, 5 images, --jobs 2): %.1f s" % cold)
    for name, s in per_task.items():
        print("  %-10s %s (+%s over the base)" % (name, mb(s), mb(s - base_size)))
    print("all-in-one cold build: %.1f s, %s (+%s over the base)"
          % (aio_time, mb(aio_size), mb(aio_size - base_size)))
    print("no-change rebuild: median %.3f s (min %.3f, max %.3f, %d runs)"
          % (noop[len(noop) // 2], noop[0], noop[-1], len(noop)))
    print("one-cell-change rebuild: %.1f s, rebuilt %s" % (one_cell, rebuilt))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
