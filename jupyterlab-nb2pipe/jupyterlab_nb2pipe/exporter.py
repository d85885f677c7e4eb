"""nbconvert exporter: `jupyter nbconvert --to nb2pipe NB.ipynb` writes NB.zip.

The output is a zip of the bundle `nb2pipe convert` writes (`<pipeline>/plan.json`,
`<pipeline>/tasks/...`, `<pipeline>/airflow/<pipeline>.py`, ...), so one file carries
the DAG and everything its tasks need, and JupyterLab's "Save and Export Notebook As"
can download it. The zip is deterministic: sorted entries, fixed timestamps.

Options: `--Nb2pipeExporter.target=argo` (airflow, argo, tekton, kfp, all),
`--Nb2pipeExporter.profile=prod`.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tempfile
import zipfile

import nbformat
from nbconvert.exporters import Exporter
from traitlets import TraitError, Unicode, validate

from . import runner

# 1980-01-01, the earliest time a zip entry can carry: the same bundle gives the same bytes.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class Nb2pipeError(Exception):
    pass


class Nb2pipeExporter(Exporter):
    export_from_notebook = "nb2pipe pipeline (zip)"
    output_mimetype = "application/zip"

    target = Unicode("airflow", help="airflow, argo, tekton, kfp or all").tag(config=True)
    profile = Unicode("", help="profile from nb2pipe.toml / [tool.nb2pipe]").tag(config=True)

    @validate("target")
    def _check_target(self, proposal):
        if proposal["value"] not in runner.TARGETS:
            raise TraitError(f"target must be one of {', '.join(runner.TARGETS)}")
        return proposal["value"]

    @validate("profile")
    def _check_profile(self, proposal):
        if proposal["value"] and not runner.PROFILE_RE.match(proposal["value"]):
            raise TraitError("profile must be letters, digits, `_`, `-`, `.`")
        return proposal["value"]

    def _file_extension_default(self):
        return ".zip"

    def from_notebook_node(self, nb, resources=None, **kw):
        nb_copy, resources = super().from_notebook_node(nb, resources, **kw)
        meta = resources.get("metadata", {}) if resources else {}
        name = meta.get("name") or "notebook"
        folder = meta.get("path") or ""
        with tempfile.TemporaryDirectory(prefix="nb2pipe-export-") as tmp:
            notebook = self._source_file(nb_copy, folder, name, tmp)
            out = os.path.join(tmp, "out")
            try:
                binary = runner.find_binary()
            except runner.RequestError as e:
                raise Nb2pipeError(e.message) from None
            argv = [binary, "convert", notebook, "--format", "json", "-o", out,
                    "--target", self.target]
            if self.profile:
                argv += ["--profile", self.profile]
            proc = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL,
                                  timeout=runner.DEFAULT_TIMEOUT, shell=False)
            try:
                doc = json.loads(proc.stdout.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                doc = None
            if proc.returncode != 0 or not isinstance(doc, dict) or not doc.get("ok"):
                raise Nb2pipeError(_explain(name, proc, doc))
            data = _zip_folder(doc["bundle"])
        resources["output_extension"] = self.file_extension
        resources.setdefault("nb2pipe", {})["files"] = doc.get("files", [])
        return data, resources

    def _source_file(self, nb, folder: str, name: str, tmp: str) -> str:
        """The notebook's own file when it is what we were given (so nb2pipe.toml and pins
        next to it count), else a copy in `tmp`."""
        # nbconvert gives "" as the folder of a notebook named relative to the cwd.
        original = os.path.join(folder or ".", name + ".ipynb")
        if os.path.isfile(original):
            try:
                on_disk = nbformat.read(original, as_version=4)
                if on_disk == nb:
                    return os.path.abspath(original)
            except Exception:  # noqa: BLE001 - any unreadable file: export the copy instead
                pass
        copy = os.path.join(tmp, name + ".ipynb")
        nbformat.write(nb, copy)
        return copy


def _explain(name: str, proc, doc) -> str:
    lines = [f"nb2pipe could not convert {name}.ipynb (exit {proc.returncode})"]
    for d in (doc or {}).get("diagnostics", []) if isinstance(doc, dict) else []:
        loc = d.get("location") or {}
        cell = loc.get("cell")
        # Counted from 1 with markdown cells, as the notebook shows them (older nb2pipe: cell + 1).
        number = loc.get("cell_number", cell + 1 if isinstance(cell, int) else None)
        where = f"cell {number}" + (f" line {loc['line']}" if loc.get("line") else "") if cell is not None else "notebook"
        lines.append(f"  {d.get('severity', 'error')} {d.get('code', '')} at {where}: {d.get('message', '')}")
    stderr = proc.stderr.decode("utf-8", "replace").strip()
    if stderr and not (isinstance(doc, dict) and doc.get("diagnostics")):
        lines.append(stderr[-2000:])
    return "\n".join(lines)


def _zip_folder(bundle: str) -> bytes:
    base = os.path.dirname(bundle.rstrip(os.sep))
    entries = []
    for dirpath, dirnames, filenames in os.walk(bundle):
        dirnames.sort()
        for f in sorted(filenames):
            full = os.path.join(dirpath, f)
            entries.append((os.path.relpath(full, base).replace(os.sep, "/"), full))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for arc, full in sorted(entries):
            info = zipfile.ZipInfo(arc, ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            # Keep the executable bit (none today, but scripts may come).
            info.external_attr = (os.stat(full).st_mode & 0o777 | 0o100000) << 16
            with open(full, "rb") as fh:
                zf.writestr(info, fh.read())
    return buf.getvalue()
