"""`nb2pipe run` from the panel: POST /nb2pipe/run starts it, /nb2pipe/runs follows it;
then `%nb2pipe inputs` in a real kernel of the test venv (the nb2pipe wheel's extension)."""

from __future__ import annotations

import json
import time

import nbclient
import nbformat

from test_server import post


def plain_notebook(path, fail=False, gate=None):
    """Two tasks of plain Python (the test venv has no pandas): `make` hands `numbers`
    and `label` to `total`. With `gate`, `make` waits until that file exists."""
    wait = f"import os, time\nwhile not os.path.exists({str(gate)!r}):\n    time.sleep(0.05)\n" if gate else ""
    cells = [
        (wait + "numbers = [3, 1, 2]\nlabel = 'n\\u00e9'\nprint('made', numbers)", ["task:make"]),
        ("total = sum(numbers)\n" + ("raise ValueError('boom')\n" if fail else "") + "print('total', total, label)", ["task:total"]),
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src, metadata={"tags": tags}) for src, tags in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


# Not build/: test_server.py checks that failed converts leave no build/ in the root.
OUT = "run-out"


def follow(server, path, timeout=120, until=None):
    """Polls /nb2pipe/runs until the run has ended, or until `until(states)` holds for
    the active run's task states; returns the last answer and every (task, state) seen."""
    deadline = time.monotonic() + timeout
    seen = set()
    while time.monotonic() < deadline:
        r = post(server, "runs", {"path": path, "out": OUT})
        assert r.status_code == 200, r.text
        doc = r.json()
        active = doc["active"]
        if active:
            states = {t["name"]: t["state"] for t in active["tasks"]}
            seen |= set(states.items())
            if until(states) if until else not active["running"]:
                return doc, seen
        time.sleep(0.1)
    raise TimeoutError(f"the run of {path} did not reach its state within {timeout}s")


def test_run_reports_states_log_tails_and_the_last_run(server):
    gate = server["root"] / "plain.gate"
    plain_notebook(server["root"] / "plain.ipynb", gate=gate)
    r = post(server, "runs", {"path": "plain.ipynb", "out": OUT})
    assert r.json() == {"ok": True, "active": None, "last": None}
    r = post(server, "run", {"path": "plain.ipynb", "out": OUT})
    assert r.status_code == 200, r.text
    # `make` holds at the gate, so the panel must show the run in progress before it ends.
    doc, _ = follow(server, "plain.ipynb", until=lambda s: s == {"make": "running", "total": "waiting"})
    assert doc["active"]["running"], doc
    gate.touch()
    doc, _ = follow(server, "plain.ipynb")
    assert doc["active"]["exit_code"] == 0, doc
    states = {t["name"]: t["state"] for t in doc["active"]["tasks"]}
    assert states == {"make": "succeeded", "total": "succeeded"}
    last = doc["last"]
    assert last["run_id"] == doc["active"]["run_id"] and last["pipeline"] == "plain"
    tails = {t["name"]: t["log_tail"] for t in last["tasks"]}
    assert "made [3, 1, 2]" in tails["make"] and "total 6 n\u00e9" in tails["total"]


def test_a_failed_task_is_reported_with_its_cell(server):
    plain_notebook(server["root"] / "failing.ipynb", fail=True)
    assert post(server, "run", {"path": "failing.ipynb", "out": OUT}).status_code == 200
    doc, _ = follow(server, "failing.ipynb")
    assert doc["active"]["exit_code"] == 1
    total = next(t for t in doc["last"]["tasks"] if t["name"] == "total")
    assert total["state"] == "failed"
    assert total["error"]["cell"] == 1 and "ValueError: boom" in total["error"]["message"]
    assert "ValueError: boom" in total["log_tail"]


def test_run_refuses_what_inspect_refuses(server):
    assert post(server, "run", {"path": "../outside/secret.ipynb"}).status_code == 403
    assert post(server, "run", {"path": "churn.ipynb", "out": "../x"}).status_code == 400
    assert post(server, "runs", {"path": "churn.ipynb", "python": "/bin/sh"}).status_code == 400
    assert post(server, "run", {"path": "churn.ipynb"}, token=False).status_code in (401, 403)


def test_the_extension_loads_the_inputs_in_a_real_kernel(server):
    """The panel's "Load inputs into kernel": `%nb2pipe inputs total` in the notebook's
    folder gives the kernel the values `total` received, equal to what `make` computes."""
    root = server["root"]
    # Another pipeline in the folder with a task of the same name.
    plain_notebook(root / "kern_other.ipynb")
    assert post(server, "run", {"path": "kern_other.ipynb", "out": OUT}).status_code == 200
    assert follow(server, "kern_other.ipynb")[0]["active"]["exit_code"] == 0
    plain_notebook(root / "kern.ipynb")
    assert post(server, "run", {"path": "kern.ipynb", "out": OUT}).status_code == 200
    doc, _ = follow(server, "kern.ipynb")
    assert doc["active"]["exit_code"] == 0, doc
    code = [
        "%load_ext nb2pipe",
        # Pipelines of this folder other than kern have a task `total`: the name says which.
        "%nb2pipe inputs total --runs run-out/nb2pipe-data",
        "%nb2pipe inputs total --runs run-out/nb2pipe-data --pipeline kern",
        "import json\nprint('GOT', json.dumps([numbers, label]))",
        "del numbers, label",
        "%nb2pipe outputs make --runs run-out/nb2pipe-data --pipeline kern",
        "print('OUT', numbers, label)",
        "%nb2pipe runs --runs run-out/nb2pipe-data --pipeline kern",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in code])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(root)}}
    ).execute()
    out = ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells]
    assert out[1].startswith("UsageError: task 'total' is in pipelines ") and "kern, kern_other" in out[1], out[1]
    assert out[1].endswith(": choose one with --pipeline\n"), out[1]
    del out[1]
    # kern is kern_other's code: its tasks are served from the cache that run filled.
    assert out[1].startswith("inputs of task 'total', run %s (cached): label (str), numbers (list)" % doc["active"]["run_id"]), out
    assert out[2] == 'GOT [[3, 1, 2], "n\\u00e9"]\n'
    assert out[4].startswith("outputs of task 'make'") and out[5] == "OUT [3, 1, 2] n\u00e9\n", out
    assert "total  cached" in out[6], out
