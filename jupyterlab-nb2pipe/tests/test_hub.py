"""A real JupyterHub on 127.0.0.1: log in, spawn a single-user server with the extension,
and call the extension through the hub's proxy.

configurable-http-proxy comes from npm (tests/run.sh puts it in NB2PIPE_CHP); the
spawner is JupyterHub's SimpleLocalProcessSpawner, the authenticator its
DummyAuthenticator. Every wait is bounded; the hub and the servers it spawned are
stopped at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import VENV_BIN, free_port, make_root, stop, wait_http

# DummyAuthenticator takes any password (its `password` option is deprecated in JupyterHub 5.3+).
PASSWORD = "any"


@pytest.fixture(scope="module")
def hub(tmp_path_factory, nb2pipe_bin):
    chp = os.environ.get("NB2PIPE_CHP")
    assert chp and Path(chp).is_file(), "NB2PIPE_CHP must name configurable-http-proxy (tests/run.sh installs it)"
    base = tmp_path_factory.mktemp("hub")
    homes = base / "homes"
    make_root(homes / "alice")
    (homes / "bob").mkdir(parents=True)
    port, hub_port, api_port = free_port(), free_port(), free_port()
    service_token = secrets.token_hex(16)
    config = base / "jupyterhub_config.py"
    config.write_text(f"""
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.should_start = True
c.JupyterHub.db_url = "sqlite:///{base}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{base}/cookie_secret"
c.JupyterHub.pid_file = "{base}/jupyterhub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {{"alice", "bob"}}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{homes}/{{username}}"
c.Spawner.cmd = [{str(VENV_BIN / "jupyterhub-singleuser")!r}]
# These tests run as root on CI machines; a real image runs the server as its user.
c.Spawner.args = ["--allow-root"]
c.Spawner.notebook_dir = "{homes}/{{username}}"
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90
c.Spawner.environment = {{"PATH": {str(VENV_BIN) + ":" + os.environ.get("PATH", "")!r},
                         "JUPYTER_CONFIG_DIR": "{base}/user-config"}}
c.JupyterHub.cleanup_servers = True
c.JupyterHub.services = [{{"name": "tester", "api_token": {service_token!r}}}]
c.JupyterHub.load_roles = [{{"name": "tester", "services": ["tester"],
    "scopes": ["admin:users", "admin:servers", "admin:server_state", "tokens"]}}]
""")
    log = open(base / "hub.log", "wb")
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    proc = subprocess.Popen([str(VENV_BIN / "jupyterhub"), "-f", str(config)], cwd=base, stdout=log,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    api = {"Authorization": f"token {service_token}"}
    pids = []
    try:
        wait_http(f"{url}/hub/api/", 90, proc, want=200)
        yield {"url": url, "api": api, "homes": homes, "pids": pids, "log": base / "hub.log"}
    finally:
        # Stop the user servers through the hub, then the hub (and its proxy).
        for user in ("alice", "bob"):
            try:
                requests.delete(f"{url}/hub/api/users/{user}/server", headers=api, timeout=30)
            except requests.RequestException:
                pass
        stop(proc, timeout=30)
        log.close()
        # The proxy runs in its own session: if the hub died before cleaning up, stop it here.
        proxy_pid = base / "jupyterhub-proxy.pid"
        if proxy_pid.is_file():
            pids.append(int(proxy_pid.read_text().strip() or 0))
        for pid in filter(None, pids):
            kill_if(pid, ("configurable-http-proxy", "jupyterhub-singleuser"))


def kill_if(pid: int, names) -> None:
    """SIGKILL `pid` only if it is still one of the processes this test started."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
    except OSError:
        return
    if any(n in cmdline for n in names):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def login(hub, user) -> requests.Session:
    s = requests.Session()
    r = s.get(f"{hub['url']}/hub/login", timeout=30)
    assert r.status_code == 200
    r = s.post(f"{hub['url']}/hub/login", data={"username": user, "password": PASSWORD, "_xsrf": s.cookies.get("_xsrf")},
               timeout=60, allow_redirects=False)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    assert any(c.name.startswith("jupyterhub-session") or c.name == "jupyterhub-hub-login" for c in s.cookies)
    return s


def wait_ready(hub, user, timeout=120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = requests.get(f"{hub['url']}/hub/api/users/{user}", headers=hub["api"], timeout=10)
        server = r.json().get("servers", {}).get("")
        if server and server.get("ready"):
            pid = (server.get("state") or {}).get("pid")
            if pid:
                hub["pids"].append(pid)
            return server
        time.sleep(0.5)
    raise TimeoutError(f"{user}'s server was not ready within {timeout}s; see {hub['log']}")


def test_login_spawn_and_call_the_extension_through_the_hub(hub):
    s = login(hub, "alice")
    # What the "Start My Server" button does.
    r = s.get(f"{hub['url']}/hub/spawn", timeout=60)
    assert r.status_code == 200
    wait_ready(hub, "alice")
    # Through the proxy, the browser's way: OAuth with the hub, then the server's XSRF cookie.
    r = s.get(f"{hub['url']}/user/alice/lab", timeout=60)
    assert r.status_code == 200 and "jupyterlab-nb2pipe" in r.text, r.url
    xsrf = s.cookies.get("_xsrf", path="/user/alice/")
    assert xsrf, [c.name for c in s.cookies]
    r = s.post(f"{hub['url']}/user/alice/nb2pipe/inspect", data=json.dumps({"path": "churn.ipynb"}),
               headers={"X-XSRFToken": xsrf}, timeout=60)
    assert r.status_code == 200, r.text[:500]
    assert [t["name"] for t in r.json()["plan"]["tasks"]] == ["load", "clean", "train", "evaluate"]
    r = s.post(f"{hub['url']}/user/alice/nb2pipe/convert", data=json.dumps({"path": "churn.ipynb", "target": "airflow"}),
               headers={"X-XSRFToken": xsrf}, timeout=60)
    assert r.status_code == 200 and r.json()["ok"], r.text[:500]
    assert (hub["homes"] / "alice" / "build" / "churn" / "airflow" / "churn.py").is_file()
    # Cookie auth without the XSRF token is refused.
    r = s.post(f"{hub['url']}/user/alice/nb2pipe/inspect", data=json.dumps({"path": "churn.ipynb"}), timeout=30)
    assert r.status_code == 403


def test_only_the_owner_can_call_it(hub):
    wait_ready(hub, "alice")
    # No credentials at all.
    r = requests.post(f"{hub['url']}/user/alice/nb2pipe/inspect", data=json.dumps({"path": "churn.ipynb"}),
                      timeout=30, allow_redirects=False)
    assert r.status_code in (302, 401, 403), r.status_code
    # Another hub user, logged in, is refused by the hub's OAuth for alice's server.
    bob = login(hub, "bob")
    r = bob.get(f"{hub['url']}/user/alice/nb2pipe/info", timeout=60)
    assert r.status_code == 403, (r.status_code, r.url)
    # alice's own API token works, as it would for a script of hers.
    r = requests.post(f"{hub['url']}/hub/api/users/alice/tokens", headers=hub["api"], timeout=30,
                      data=json.dumps({"note": "test", "expires_in": 600}))
    assert r.status_code in (200, 201), r.text
    token = r.json()["token"]
    r = requests.post(f"{hub['url']}/user/alice/nb2pipe/inspect", data=json.dumps({"path": "churn.ipynb"}),
                      headers={"Authorization": f"token {token}"}, timeout=60)
    assert r.status_code == 200, r.text[:300]
