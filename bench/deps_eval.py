#!/usr/bin/env python3
"""Scores dependency inference on the labelled fixtures in fixtures/deps/ (expected.json):
nb2pipe against pipreqs, precision and recall, and what inference costs a convert.

    python3 bench/deps_eval.py [--nb2pipe target/release/nb2pipe] [--runs 30]

pipreqs is installed from PyPI into its own venv under ~/.cache/nb2pipe/venvs/ on first use.
pipreqs asks PyPI whether each name it guessed exists; so that the benchmark sends nothing
over the network, it is pointed (--pypi-server) at a stub on 127.0.0.1 that says every name
exists. That can only help pipreqs' precision.

Scores, micro-averaged over notebooks, on PEP 503-normalised distribution names:
- "names": per notebook, the union of all tasks' names; the only level pipreqs works at.
- "task lines" (nb2pipe only): per task, exact requirement lines, pins included.
"""
import argparse
import http.server
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures", "deps")
PIPREQS_VERSION = "0.5.0"
VENV = os.path.join(os.path.expanduser("~"), ".cache", "nb2pipe", "venvs", "pipreqs-" + PIPREQS_VERSION)


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def ensure_pipreqs():
    exe = os.path.join(VENV, "bin", "pipreqs")
    if not os.path.exists(exe):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q", "pipreqs==" + PIPREQS_VERSION], check=True)
    return exe


class StubPyPI(http.server.BaseHTTPRequestHandler):
    """Answers pipreqs' `GET /pypi/<name>/json` with "it exists, version 0"."""

    def do_GET(self):
        name = self.path.strip("/").split("/")[-2] if self.path.count("/") >= 3 else "x"
        info = {"name": name, "version": "0", "package_url": "http://127.0.0.1/" + name, "summary": "", "description": "", "home_page": "",
                "bugtrack_url": "", "docs_url": "", "author": "", "author_email": "", "maintainer": "", "maintainer_email": "", "license": "",
                "downloads": {"last_day": 0, "last_week": 0, "last_month": 0}, "classifiers": []}
        body = json.dumps({"info": info, "releases": {"0": []}, "urls": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def score(pairs):
    tp = sum(len(p & t) for p, t in pairs)
    npred = sum(len(p) for p, _ in pairs)
    ntruth = sum(len(t) for _, t in pairs)
    return {"precision": round(tp / npred, 4) if npred else 1.0, "recall": round(tp / ntruth, 4) if ntruth else 1.0, "tp": tp, "predicted": npred, "expected": ntruth}


def case_args(name, e):
    d = os.path.join(FIXTURES, name)
    return [os.path.join(d, a) if "/" in a else a for a in e["args"]]


def run_nb2pipe(exe, nb, args):
    p = subprocess.run([exe, "deps", nb, "--format", "json"] + args, capture_output=True, text=True)
    if p.returncode != 0:
        return None
    return json.loads(p.stdout)


def run_pipreqs(exe, folder, server):
    # pipreqs reads every .py and .ipynb in the folder, as its users run it.
    with tempfile.TemporaryDirectory() as tmp:
        work = os.path.join(tmp, "case")
        shutil.copytree(folder, work, ignore=shutil.ignore_patterns(".venv", "pyenv"))
        p = subprocess.run([exe, "--scan-notebooks", "--mode", "no-pin", "--print", "--pypi-server", server, work], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        return None, p.stderr.strip().splitlines()[-1:] or ["exit %d" % p.returncode]
    names = set()
    for line in p.stdout.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(norm(re.split(r"[=<>~!\[ ;]", line)[0]))
    return names, None


def site_packages(venv):
    lib = os.path.join(venv, "lib")
    return os.path.join(lib, sorted(os.listdir(lib))[0], "site-packages")


def timing(exe, runs):
    """Whole `nb2pipe convert` processes with and without the deps step (NB2PIPE_DEPS=off),
    interleaved: median CPU time (user + sys, from wait4) and median wall time."""
    out = {}
    cases = [("churn (4 tasks, no pins)", os.path.join(ROOT, "fixtures", "notebooks", "churn.ipynb"), []),
             ("venv_env (.venv with 6 distributions)", os.path.join(FIXTURES, "venv_env", "venv_env.ipynb"), []),
             ("passed_values (3 tasks)", os.path.join(FIXTURES, "passed_values", "passed_values.ipynb"), [])]
    real = os.path.join(VENV, "bin", "python")
    if os.path.exists(real):
        n = len([d for d in os.listdir(site_packages(VENV)) if d.endswith(".dist-info")])
        cases.append(("churn --python a real venv (%d distributions)" % n, cases[0][1], ["--python", real]))
    for label, nb, args in cases:
        wall = {"on": [], "off": []}
        cpu = {"on": [], "off": []}
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(runs):
                for mode in ("on", "off") if i % 2 == 0 else ("off", "on"):
                    env = dict(os.environ, NB2PIPE_DEPS=mode)
                    t0 = time.perf_counter()
                    p = subprocess.Popen([exe, "convert", nb, "-o", tmp] + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    _, status, ru = os.wait4(p.pid, 0)
                    wall[mode].append((time.perf_counter() - t0) * 1000)
                    if status != 0:
                        raise SystemExit("convert %s failed" % nb)
                    # CPU time of the process: what the step costs, whatever else runs on the machine.
                    cpu[mode].append((ru.ru_utime + ru.ru_stime) * 1000)
        out[label] = {
            "cpu_ms_with": round(statistics.median(cpu["on"]), 2),
            "cpu_ms_without": round(statistics.median(cpu["off"]), 2),
            "cpu_cost_ms": round(statistics.median(cpu["on"]) - statistics.median(cpu["off"]), 2),
            "cpu_cost_ms_mean": round(statistics.mean(cpu["on"]) - statistics.mean(cpu["off"]), 2),
            "wall_ms_with": round(statistics.median(wall["on"]), 2),
            "wall_ms_without": round(statistics.median(wall["off"]), 2),
        }
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nb2pipe", default=os.path.join(ROOT, "target", "release", "nb2pipe"))
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--skip-pipreqs", action="store_true")
    a = ap.parse_args()
    expected = json.load(open(os.path.join(FIXTURES, "expected.json")))

    nb_names, nb_lines, failures = [], [], []
    pr_names, pr_failures = [], []
    per_case = {}
    server = None
    if not a.skip_pipreqs:
        pipreqs = ensure_pipreqs()
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StubPyPI)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        server = "http://127.0.0.1:%d/pypi/" % httpd.server_address[1]
    for name, e in sorted(expected.items()):
        nb = os.path.join(FIXTURES, name, e["notebook"])
        truth_tasks = {t: set(lines) for t, lines in e["tasks"].items()}
        truth = {norm(re.split(r"[=<>~!\[ ;@]", l)[0]) for lines in truth_tasks.values() for l in lines}
        doc = run_nb2pipe(a.nb2pipe, nb, case_args(name, e))
        if doc is None:
            failures.append(name)
            got, got_tasks = set(), {}
        else:
            got_tasks = {t["task"]: {r["line"] for r in t["requirements"]} for t in doc["tasks"]}
            got = {norm(r["name"]) for t in doc["tasks"] for r in t["requirements"]}
        nb_names.append((got, truth))
        for t in set(truth_tasks) | set(got_tasks):
            nb_lines.append((got_tasks.get(t, set()), truth_tasks.get(t, set())))
        row = {"expected": sorted(truth), "nb2pipe": sorted(got)}
        if server:
            names, err = run_pipreqs(pipreqs, os.path.dirname(nb), server)
            if names is None:
                pr_failures.append("%s (%s)" % (name, err[0] if err else ""))
                names = set()
            pr_names.append((names, truth))
            row["pipreqs"] = sorted(names)
        per_case[name] = row

    result = {
        "notebooks": len(expected),
        "nb2pipe": {"names": score(nb_names), "task_lines": score(nb_lines), "failed": failures},
    }
    if server:
        result["pipreqs"] = {"version": PIPREQS_VERSION, "names": score(pr_names), "failed": pr_failures}
    result["timing"] = timing(a.nb2pipe, a.runs)
    result["cases"] = per_case
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
