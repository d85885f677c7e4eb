"""`jupyter nbconvert --to nb2pipe`: the real CLI, through the entry point the wheel declares."""

from __future__ import annotations

import shutil
import subprocess
import zipfile

from conftest import FIXTURES, VENV_BIN, broken_churn


def nbconvert(*args, cwd):
    return subprocess.run([str(VENV_BIN / "jupyter"), "nbconvert", "--to", "nb2pipe", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_writes_a_zip_of_the_bundle(tmp_path, nb2pipe_bin):
    shutil.copy(FIXTURES / "notebooks" / "churn.ipynb", tmp_path)
    r = nbconvert("churn.ipynb", "--output-dir", "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    z = zipfile.ZipFile(tmp_path / "out" / "churn.zip")
    names = z.namelist()
    assert names == sorted(names)
    assert {"churn/plan.json", "churn/airflow/churn.py", "churn/tasks/train/main.py",
            "churn/tasks/train/Dockerfile"} <= set(names)
    assert b"KubernetesPodOperator" in z.read("churn/airflow/churn.py")
    # The same notebook gives the same bytes.
    first = (tmp_path / "out" / "churn.zip").read_bytes()
    assert nbconvert("churn.ipynb", "--output-dir", "out2", cwd=tmp_path).returncode == 0
    assert (tmp_path / "out2" / "churn.zip").read_bytes() == first
    # The notebook itself is untouched and no build/ folder is left next to it.
    assert (tmp_path / "churn.ipynb").read_bytes() == (FIXTURES / "notebooks" / "churn.ipynb").read_bytes()
    assert not (tmp_path / "build").exists()


def test_settings_next_to_the_notebook_count(tmp_path, nb2pipe_bin):
    shutil.copy(FIXTURES / "notebooks" / "churn.ipynb", tmp_path)
    (tmp_path / "nb2pipe.toml").write_text('registry = "registry.example.com/from-project-file"\n')
    r = nbconvert("churn.ipynb", "--output-dir", "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    plan = zipfile.ZipFile(tmp_path / "out" / "churn.zip").read("churn/plan.json").decode()
    assert "from-project-file" in plan


def test_problems_fail_the_export_naming_the_cell(tmp_path, nb2pipe_bin):
    last = broken_churn(tmp_path / "broken.ipynb")
    r = nbconvert("broken.ipynb", cwd=tmp_path)
    assert r.returncode != 0
    assert "NB020" in r.stderr and f"cell {last + 1}" in r.stderr and "cpus:2" in r.stderr
    assert not (tmp_path / "broken.zip").exists()


def test_target_is_validated(tmp_path, nb2pipe_bin):
    shutil.copy(FIXTURES / "notebooks" / "churn.ipynb", tmp_path)
    r = nbconvert("churn.ipynb", "--Nb2pipeExporter.target=airflow;id", cwd=tmp_path)
    assert r.returncode != 0 and "target must be one of" in r.stderr
