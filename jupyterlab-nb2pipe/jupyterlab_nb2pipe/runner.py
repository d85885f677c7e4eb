"""Running the nb2pipe binary: one table entry per subcommand, argument lists only.

Everything a request can carry is checked here before it reaches an argument list:
the notebook path must resolve (symlinks followed) to a `.ipynb` file inside the
server's root, the output folder too, and target/profile must match an allow-list or
pattern. The binary is never run through a shell.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

TARGETS = ("airflow", "argo", "tekton", "kfp", "all")
# A profile is a TOML table key in nb2pipe.toml: keep it to a plain identifier.
PROFILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# Relative folder of plain path segments; `..` and hidden segments are refused below.
FOLDER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*/?$")
DEFAULT_TIMEOUT = 120.0


class RequestError(Exception):
    """A problem with what the caller asked for: reported as JSON with this status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def find_binary() -> str:
    """`NB2PIPE_BIN` if set, else `nb2pipe` on PATH (the `nb2pipe` wheel puts it there)."""
    explicit = os.environ.get("NB2PIPE_BIN")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise RequestError(500, f"NB2PIPE_BIN={explicit!r} is not an executable file")
    found = shutil.which("nb2pipe")
    if not found:
        raise RequestError(500, "the nb2pipe binary is not installed: pip install nb2pipe")
    return found


def _inside(root: str, path: str) -> bool:
    root = os.path.realpath(root)
    path = os.path.realpath(path)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolve_notebook(root: str, rel: Any, allow_hidden: bool = True) -> str:
    """Absolute, symlink-free path of a notebook given relative to the server root."""
    if not isinstance(rel, str) or not rel.strip():
        raise RequestError(400, "`path` (the notebook, relative to the server root) is required")
    if "\x00" in rel or os.path.isabs(rel) or rel.startswith("~"):
        raise RequestError(400, "`path` must be relative to the server root")
    if not rel.endswith(".ipynb"):
        raise RequestError(400, "`path` must name a .ipynb notebook")
    # The same rule as the server's contents API (ContentsManager.allow_hidden).
    if not allow_hidden and any(p.startswith(".") for p in rel.replace(os.sep, "/").split("/") if p not in ("", ".", "..")):
        raise RequestError(403, "`path` is hidden and the server does not allow hidden files")
    full = os.path.realpath(os.path.join(root, rel))
    if not _inside(root, full):
        raise RequestError(403, "`path` is outside the server root")
    if not os.path.isfile(full):
        raise RequestError(404, f"no notebook at {rel}")
    return full


def resolve_out(root: str, notebook: str, out: Any) -> str:
    """The output folder: relative to the notebook's folder, and inside the server root."""
    if out is None or out == "":
        out = "build"
    if not isinstance(out, str) or not FOLDER_RE.match(out):
        raise RequestError(400, "`out` must be a relative folder of letters, digits, `_`, `-`, `.`, `/`")
    if any(part in ("..", ".") for part in out.split("/")):
        raise RequestError(400, "`out` must not contain `.` or `..` segments")
    full = os.path.realpath(os.path.join(os.path.dirname(notebook), out))
    if not _inside(root, full):
        raise RequestError(403, "`out` is outside the server root")
    return full


def check_target(value: Any) -> List[str]:
    values = value if isinstance(value, list) else [value or "airflow"]
    if not values or any(not isinstance(v, str) or v not in TARGETS for v in values):
        raise RequestError(400, f"`target` must be one of {', '.join(TARGETS)}")
    return list(dict.fromkeys(values))


def check_profile(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not PROFILE_RE.match(value):
        raise RequestError(400, "`profile` must be letters, digits, `_`, `-`, `.` (at most 63)")
    return value


@dataclass
class Request:
    """A validated request: what a subcommand's argument builder may read."""

    root: str
    notebook: str
    body: Dict[str, Any]
    profile: Optional[str] = None
    targets: List[str] = field(default_factory=list)
    out: Optional[str] = None


@dataclass
class Command:
    """One nb2pipe subcommand exposed at /nb2pipe/<name>.

    `options` names the request fields it accepts (each validated by VALIDATORS);
    `args` builds the argument list after the binary; exit codes in `ok_codes` print
    a JSON document on stdout (1 = problems in the notebook, reported as diagnostics).
    """

    args: Callable[[Request], List[str]]
    options: tuple = ()
    ok_codes: tuple = (0, 1)
    writes: bool = False


def _profile_args(req: Request) -> List[str]:
    return ["--profile", req.profile] if req.profile else []


def _target_args(req: Request) -> List[str]:
    return [a for t in req.targets for a in ("--target", t)]


# Adding a subcommand is one entry here (and a button or call in the frontend).
COMMANDS: Dict[str, Command] = {
    "inspect": Command(
        args=lambda r: ["inspect", r.notebook, "--format", "json", *_profile_args(r)],
        options=("profile",),
    ),
    "convert": Command(
        args=lambda r: [
            "convert", r.notebook, "--format", "json", "-o", r.out or "",
            *_target_args(r), *_profile_args(r),
        ],
        options=("profile", "target", "out"),
        writes=True,
    ),
    "build": Command(
        args=lambda r: ["build", r.notebook, "--format", "json", *_profile_args(r)],
        options=("profile",),
        writes=True,
    ),
}


def validate(name: str, root: str, body: Any, allow_hidden: bool = True) -> Request:
    if name not in COMMANDS:
        raise RequestError(404, f"unknown nb2pipe command {name!r}")
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    cmd = COMMANDS[name]
    unknown = sorted(set(body) - {"path", *cmd.options})
    if unknown:
        raise RequestError(400, f"unexpected field(s) for {name}: {', '.join(unknown)}")
    notebook = resolve_notebook(root, body.get("path"), allow_hidden)
    req = Request(root=os.path.realpath(root), notebook=notebook, body=body)
    if "profile" in cmd.options:
        req.profile = check_profile(body.get("profile"))
    if "target" in cmd.options:
        req.targets = check_target(body.get("target"))
    if "out" in cmd.options:
        req.out = resolve_out(root, notebook, body.get("out"))
    return req


def _relative(root: str, path: Any) -> Optional[str]:
    if not isinstance(path, str):
        return None
    full = os.path.realpath(path)
    return os.path.relpath(full, root) if _inside(root, full) else None


def run(name: str, req: Request, timeout: float = DEFAULT_TIMEOUT) -> Dict[str, Any]:
    """Runs the subcommand; returns its JSON, with paths also given relative to the root."""
    cmd = COMMANDS[name]
    argv = [find_binary(), *cmd.args(req)]
    try:
        proc = subprocess.run(  # noqa: S603 - an argument list of validated values
            argv,
            cwd=os.path.dirname(req.notebook),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            shell=False,
        )
    except subprocess.TimeoutExpired:
        raise RequestError(504, f"nb2pipe {name} did not finish within {timeout:.0f} s") from None
    except OSError as e:
        raise RequestError(500, f"cannot run nb2pipe: {e}") from None
    stderr = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode not in cmd.ok_codes:
        # Exit 2 is bad usage, e.g. a subcommand this nb2pipe version does not have.
        raise RequestError(500, f"nb2pipe {name} failed (exit {proc.returncode}): {stderr[-2000:]}")
    try:
        doc = json.loads(proc.stdout.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RequestError(500, f"nb2pipe {name} printed no JSON (exit {proc.returncode}): {stderr[-2000:]}") from None
    if not isinstance(doc, dict):
        raise RequestError(500, f"nb2pipe {name} printed JSON that is not an object")
    doc.setdefault("ok", proc.returncode == 0)
    doc["exit_code"] = proc.returncode
    doc["notebook_path"] = os.path.relpath(req.notebook, req.root)
    if "bundle" in doc:
        doc["bundle_path"] = _relative(req.root, doc["bundle"])
    return doc


# ---------------------------------------------------------------- nb2pipe run, for the panel
# `nb2pipe run --progress jsonl` in the background, one at a time per notebook; the
# panel polls /nb2pipe/runs for the live states (read from the JSON lines) and, once
# a run is over, for its run.json (read with the task runtime's own reader).
LOG_TAIL = 20


@dataclass
class Job:
    notebook: str
    proc: subprocess.Popen
    run_id: Optional[str] = None
    run_dir: Optional[str] = None
    tasks: List[str] = field(default_factory=list)
    states: Dict[str, str] = field(default_factory=dict)
    stderr: List[str] = field(default_factory=list)

    def read(self) -> None:
        """Follows the progress lines until the process ends (a thread of its own)."""
        for raw in self.proc.stdout:
            try:
                ev = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(ev, dict):
                continue
            if ev.get("event") == "begin":
                self.run_id, self.run_dir = ev.get("run_id"), ev.get("run_dir")
                self.tasks = [str(t) for t in ev.get("tasks") or []]
                self.states = {t: "waiting" for t in self.tasks}
            elif ev.get("event") == "task" and isinstance(ev.get("task"), str):
                self.states[ev["task"]] = str(ev.get("state"))
        self.proc.wait()

    @property
    def running(self) -> bool:
        return self.proc.poll() is None


JOBS: Dict[str, Job] = {}


def _python() -> str:
    """The Python that runs the tasks: NB2PIPE_PYTHON, else the server's own (the
    environment its kernels run in, in a single-user image)."""
    import sys

    return os.environ.get("NB2PIPE_PYTHON") or sys.executable


def validate_run(root: str, body: Any, allow_hidden: bool = True) -> Request:
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    unknown = sorted(set(body) - {"path", "out"})
    if unknown:
        raise RequestError(400, f"unexpected field(s): {', '.join(unknown)}")
    notebook = resolve_notebook(root, body.get("path"), allow_hidden)
    req = Request(root=os.path.realpath(root), notebook=notebook, body=body)
    req.out = resolve_out(root, notebook, body.get("out"))
    return req


def start_run(req: Request) -> Dict[str, Any]:
    import threading

    job = JOBS.get(req.notebook)
    if job is not None and job.running:
        raise RequestError(409, f"a run of {os.path.relpath(req.notebook, req.root)} is still going")
    argv = [find_binary(), "run", req.notebook, "-o", req.out or "", "--python", _python(), "--progress", "jsonl"]
    try:
        proc = subprocess.Popen(  # noqa: S603 - an argument list of validated values
            argv, cwd=os.path.dirname(req.notebook), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, shell=False,
        )
    except OSError as e:
        raise RequestError(500, f"cannot run nb2pipe: {e}") from None
    job = Job(notebook=req.notebook, proc=proc)
    JOBS[req.notebook] = job
    threading.Thread(target=job.read, daemon=True).start()
    # The diagnostics and the failure report: the panel shows the end of them.
    threading.Thread(target=lambda: job.stderr.extend(proc.stderr), daemon=True).start()
    return {"ok": True, "started": True}


def _tail(path: Any, root: str) -> Optional[str]:
    if not isinstance(path, str) or not _inside(root, path):
        return None
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    return "\n".join(lines[-LOG_TAIL:])


def _records(req: Request) -> List[Dict[str, Any]]:
    from nb2pipe import _runtime  # the nb2pipe wheel: the tasks' own reader of runs

    base = os.path.basename(req.notebook)
    out = []
    for runs in ("nb2pipe-data", "nb2pipe-runs"):
        d = os.path.join(req.out or "", runs)
        out += [r for r in _runtime.list_runs(d) if os.path.basename(str(r.get("notebook", ""))) == base]
    return out


def runs(req: Request) -> Dict[str, Any]:
    """The live run of the notebook (if any) and its latest finished run, each task
    with its state and the end of its log."""
    doc: Dict[str, Any] = {"ok": True, "active": None, "last": None}
    job = JOBS.get(req.notebook)
    if job is not None:
        logs = os.path.join(job.run_dir or "", "logs")
        doc["active"] = {
            "running": job.running,
            "exit_code": job.proc.returncode,
            "run_id": job.run_id,
            "tasks": [
                {"name": t, "state": job.states.get(t, "waiting"), "log_tail": _tail(os.path.join(logs, t + ".log"), req.root)}
                for t in job.tasks
            ],
            "stderr_tail": "".join(job.stderr[-LOG_TAIL:]),
        }
    recs = _records(req)
    if recs:
        rec = recs[0]
        doc["last"] = {
            "run_id": rec.get("run_id"),
            "pipeline": rec.get("pipeline"),
            "tasks": [
                {"name": t.get("name"), "state": t.get("state"), "error": t.get("error"), "log_tail": _tail(t.get("log"), req.root)}
                for t in rec.get("tasks", [])
            ],
        }
    return doc
