"""runner.py on its own: what happens when the binary is missing, fails, or misbehaves."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from conftest import FIXTURES
from jupyterlab_nb2pipe import runner


def fake_binary(tmp_path, body: str):
    path = tmp_path / "fake-nb2pipe"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    r.mkdir()
    shutil.copy(FIXTURES / "notebooks" / "churn.ipynb", r / "churn.ipynb")
    return r


def run(root, command="inspect", body=None):
    req = runner.validate(command, str(root), body or {"path": "churn.ipynb"})
    return runner.run(command, req, timeout=5)


def test_missing_binary_is_an_error_not_a_crash(root, monkeypatch):
    monkeypatch.setenv("NB2PIPE_BIN", str(root / "nope"))
    with pytest.raises(runner.RequestError) as e:
        run(root)
    assert e.value.status == 500 and "NB2PIPE_BIN" in e.value.message
    monkeypatch.delenv("NB2PIPE_BIN")
    monkeypatch.setenv("PATH", str(root))
    with pytest.raises(runner.RequestError) as e:
        run(root)
    assert "pip install nb2pipe" in e.value.message


def test_output_that_is_not_json(root, tmp_path, monkeypatch):
    monkeypatch.setenv("NB2PIPE_BIN", fake_binary(tmp_path, "echo 'thread main panicked' >&2; echo not json; exit 1"))
    with pytest.raises(runner.RequestError) as e:
        run(root)
    assert e.value.status == 500 and "printed no JSON" in e.value.message and "panicked" in e.value.message


def test_usage_errors_carry_stderr(root, tmp_path, monkeypatch):
    monkeypatch.setenv("NB2PIPE_BIN", fake_binary(tmp_path, "echo \"error: unknown target\" >&2; exit 2"))
    with pytest.raises(runner.RequestError) as e:
        run(root, "convert", {"path": "churn.ipynb", "target": "argo"})
    assert e.value.status == 500 and "exit 2" in e.value.message and "unknown target" in e.value.message


def test_a_hung_binary_times_out(root, tmp_path, monkeypatch):
    monkeypatch.setenv("NB2PIPE_BIN", fake_binary(tmp_path, "sleep 30"))
    req = runner.validate("inspect", str(root), {"path": "churn.ipynb"})
    with pytest.raises(runner.RequestError) as e:
        runner.run("inspect", req, timeout=0.5)
    assert e.value.status == 504


def test_arguments_are_a_list_of_validated_values(root, tmp_path, monkeypatch):
    # The fake binary prints its argv as JSON: no shell ever sees the values.
    monkeypatch.setenv("NB2PIPE_BIN", fake_binary(
        tmp_path, 'python3 -c \'import json,sys; print(json.dumps({"argv": sys.argv[1:]}))\' "$@"'))
    doc = run(root, "convert", {"path": "churn.ipynb", "target": "all", "profile": "prod", "out": "a/b"})
    nb = os.path.realpath(root / "churn.ipynb")
    out = os.path.realpath(root / "a" / "b")
    assert doc["argv"] == ["convert", nb, "--format", "json", "-o", out, "--target", "all", "--profile", "prod"]


def test_hidden_paths_follow_the_server_setting(root):
    (root / ".h").mkdir()
    shutil.copy(root / "churn.ipynb", root / ".h" / "x.ipynb")
    with pytest.raises(runner.RequestError) as e:
        runner.validate("inspect", str(root), {"path": ".h/x.ipynb"}, allow_hidden=False)
    assert e.value.status == 403
    assert runner.validate("inspect", str(root), {"path": ".h/x.ipynb"}, allow_hidden=True).notebook.endswith("x.ipynb")


def test_every_command_is_a_table_entry():
    for name, cmd in runner.COMMANDS.items():
        req = runner.Request(root="/r", notebook="/r/nb.ipynb", body={}, profile="p", targets=["airflow"], out="/r/o")
        argv = cmd.args(req)
        assert argv[0] == name and "/r/nb.ipynb" in argv and "json" in argv, name
        assert set(cmd.options) <= {"profile", "target", "out"}
    json.dumps(list(runner.COMMANDS))
