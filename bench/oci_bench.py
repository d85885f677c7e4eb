#!/usr/bin/env python3
"""Benchmark of `nb2pipe build --engine oci --push` (not a timed test), side by side with
the Docker Engine building one all-in-one image of the same requirements, in one run.
Needs the services of tests/env/docker.sh (the base image pushed to the local registry):

    eval "$(bash tests/env/docker.sh)"
    cargo build --release
    python3 bench/oci_bench.py [--nb2pipe target/release/nb2pipe] [--runs 5]

The notebook is bench/docker_bench.py's: 5 tasks, `six` and `tabulate` shared by two tasks
each. Measured: a cold build and push of the five per-task images (a clean oci cache, a
new registry path: the base facts, both pip installs and every upload included); a
build with an empty oci cache on the registry's cache (another machine); a
no-change `build --push`; a one-cell change; and the registry storage of the five images
(unique blobs) against the all-in-one image pushed to the same registry plus the code
layers.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from docker_bench import CELLS, all_in_one, notebook, timed  # noqa: E402


def manifest(ref):
    """The manifest of `host/repo@digest` (or :tag) in a local anonymous registry."""
    host, rest = ref.split("/", 1)
    repo, sep, tag = rest.rpartition("@") if "@" in rest else rest.rpartition(":")
    req = urllib.request.Request(
        "http://%s/v2/%s/manifests/%s" % (host, repo, tag),
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json,"
                           "application/vnd.docker.distribution.manifest.v2+json"})
    return json.load(urllib.request.urlopen(req))


def blobs(ref):
    m = manifest(ref)
    return {b["digest"]: b["size"] for b in m["layers"] + [m["config"]]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nb2pipe", default="target/release/nb2pipe")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    base = os.environ["NB2PIPE_TEST_BASE_IMAGE_OCI"]
    registry = os.environ["NB2PIPE_TEST_REGISTRY"]
    reg = "%s/bench-oci-%x" % (registry, time.time_ns())
    cert = os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
    work = tempfile.mkdtemp(prefix="nb2pipe-oci-bench-")
    env = dict(os.environ, NB2PIPE_OCI_CACHE=os.path.join(work, "cache"))
    nb = os.path.join(work, "bench.ipynb")
    notebook(nb, CELLS)
    build = [a.nb2pipe, "build", nb, "-o", os.path.join(work, "out"), "--registry", reg,
             "--base-image", base, "--pip-cert", cert, "--engine", "oci", "--push"]

    load0 = os.getloadavg()
    cold, err = timed(build, env=env)
    stats = lambda e: re.search(r"pushed .*", e).group(0)
    cold_stats = stats(err)
    images = json.load(open(os.path.join(work, "out/bench/images.json")))["images"]

    # Another machine: an empty oci cache and output folder, the registry's cache warm.
    env2 = dict(os.environ, NB2PIPE_OCI_CACHE=os.path.join(work, "cache2"))
    build2 = [os.path.join(work, "out2") if x == os.path.join(work, "out") else x for x in build]
    shared, err = timed(build2, env=env2)
    shared_stats = stats(err) + "; " + re.search(r"dependency layers: .*", err).group(0)

    noop = []
    for _ in range(a.runs):
        t, e = timed(build, env=env)
        noop.append((t, stats(e)))
    noop.sort()

    cells = list(CELLS)
    cells[5] = (cells[5][0], cells[5][1].replace("score, table", "table, score"))
    notebook(nb, cells)
    one_cell, err = timed(build, env=env)
    rebuilt = [l.split(":")[0] for l in err.splitlines() if ": built in " in l]
    one_stats = stats(err)

    # The all-in-one image, as bench/docker_bench.py makes it, FROM the same base.
    aio = all_in_one(work, cert)
    aio_tag = "%s/bench-aio-%x/all-in-one:1" % (registry, time.time_ns())
    aio_time, _ = timed(["docker", "build", "--no-cache", "-q", "-t", aio_tag, aio],
                        env=dict(os.environ, DOCKER_BUILDKIT="0"))
    subprocess.run(["docker", "push", "-q", aio_tag], check=True, capture_output=True)

    five = {}
    code = 0
    for name, p in images.items():
        b = blobs(p["tag"].rsplit(":", 1)[0] + "@" + p["digest"])
        layers = manifest(p["tag"].rsplit(":", 1)[0] + "@" + p["digest"])["layers"]
        code += layers[-1]["size"]
        five.update(b)
    aio_blobs = blobs(aio_tag)
    mb = lambda n: "%.2f MB" % (n / 1e6)
    print("load average (1, 5, 15 min) before: %.2f %.2f %.2f, after: %.2f %.2f %.2f"
          % (load0 + os.getloadavg()))
    print("cold build + push of 5 per-task images (clean cache): %.2f s; %s" % (cold, cold_stats))
    print("clean oci cache, dependency layers from the registry's cache: %.2f s; %s"
          % (shared, shared_stats))
    print("docker build --no-cache of the all-in-one image (not pushed): %.2f s" % aio_time)
    print("no-change build --push: median %.3f s (min %.3f, max %.3f, %d runs); %s"
          % (noop[len(noop) // 2][0], noop[0][0], noop[-1][0], len(noop), noop[0][1]))
    print("one-cell change: %.3f s, rebuilt %s; %s" % (one_cell, rebuilt, one_stats))
    print("registry storage, 5 per-task images (unique blobs): %s" % mb(sum(five.values())))
    aio_total = sum(aio_blobs.values()) + code
    print("registry storage, all-in-one image: %s, + the 5 code layers %s = %s (%s)"
          % (mb(sum(aio_blobs.values())), mb(code), mb(aio_total),
             "target holds" if sum(five.values()) <= aio_total else "TARGET MISSED"))
    subprocess.run(["docker", "image", "rm", aio_tag], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
