"""Fixtures: a temp server root with fixture notebooks, and a real jupyter server on it.

Run through tests/run.sh, which builds and installs the wheels into the test venv.
Nothing here is skipped: a missing part is a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, want: int | None = None,
              **kw) -> requests.Response:
    """GETs `url` until it answers `want` (default: anything below 500); bounded by `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} while waiting for {url}")
        try:
            r = requests.get(url, timeout=5, **kw)
            if r.status_code == want if want else r.status_code < 500:
                return r
            last = f"HTTP {r.status_code}"
        except requests.RequestException as e:
            last = str(e)
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


def stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the process group the test started, then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def broken_churn(dest: Path) -> int:
    """churn.ipynb with filler cells and an unknown tag on its last cell; returns that index."""
    nb = json.loads((FIXTURES / "notebooks" / "churn.ipynb").read_text())
    filler = [
        {"cell_type": "markdown", "metadata": {}, "source": [f"## Notes {i}\n", "\n", "Some text.\n" * 6]}
        for i in range(10)
    ]
    nb["cells"][1:1] = filler
    last = nb["cells"][-1]
    last["metadata"]["tags"] = last["metadata"].get("tags", []) + ["cpus:2"]
    dest.write_text(json.dumps(nb, indent=1))
    return len(nb["cells"]) - 1


PINS = "numpy==2.1.3\npandas==2.2.3\npyarrow==18.1.0\nscikit-learn==1.5.2\n"


def make_root(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    # A pinned project, as users have: the plans then carry no unpinned-requirement warning.
    (root / "requirements.txt").write_text(PINS)
    # ... and a registry, so no plan warns that images would come from Docker Hub (NB303).
    (root / "nb2pipe.toml").write_text('registry = "registry.example.com/ml"\n')
    shutil.copy(FIXTURES / "notebooks" / "churn.ipynb", root / "churn.ipynb")
    shutil.copy(FIXTURES / "broken" / "NB020_unknown_tag.ipynb", root / "NB020_unknown_tag.ipynb")
    broken_churn(root / "churn_broken.ipynb")
    (root / "sub").mkdir(exist_ok=True)
    shutil.copy(FIXTURES / "notebooks" / "diamond.ipynb", root / "sub" / "diamond.ipynb")
    return root


@pytest.fixture(scope="session")
def nb2pipe_bin() -> str:
    path = shutil.which("nb2pipe", path=str(VENV_BIN)) or shutil.which("nb2pipe")
    assert path, "nb2pipe is not on PATH: tests/run.sh installs the nb2pipe wheel into the venv"
    return path


@pytest.fixture(scope="session")
def server(tmp_path_factory, nb2pipe_bin):
    """A real `jupyter server` with the extension enabled (by the wheel's config file)."""
    base = tmp_path_factory.mktemp("server")
    root = make_root(base / "root")
    outside = base / "outside"
    outside.mkdir()
    shutil.copy(FIXTURES / "notebooks" / "churn.ipynb", outside / "secret.ipynb")
    port = free_port()
    token = secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTER_RUNTIME_DIR=str(base / "runtime"),
               HOME=str(base / "home"))
    env.pop("NB2PIPE_BIN", None)
    log = open(base / "server.log", "wb")
    proc = subprocess.Popen(
        [str(VENV_BIN / "jupyter"), "server", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/api/status", 60, proc, headers={"Authorization": f"token {token}"})
        yield {"url": url, "token": token, "root": root, "outside": outside, "log": base / "server.log"}
    finally:
        stop(proc)
        log.close()
