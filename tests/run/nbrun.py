"""Runs a notebook whole with nbclient, as Jupyter's "Run All" would, and writes what
each cell printed as JSON, for tests/run.rs to compare with `nb2pipe run`'s task logs.

    nbrun.py NOTEBOOK OUT.json [NAME=VALUE ...]

NAME=VALUE pairs override parameters the way papermill does: a cell assigning them is
inserted after the cell tagged `parameters`; VALUE is JSON, else text (as `nb2pipe run -p`). The kernel's working directory is the
notebook's folder. Output:
    {"cells": {"<index>": "<text>"}, "error": null | {"cell", "ename", "evalue"}}
where a cell's text is its stream output (stdout and stderr, in order) plus the
text/plain of display() calls; figures (image outputs) and execute results are left
out, since a task has no display to show them on."""
import json
import os
import sys

import nbclient
import nbformat


def _value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main():
    path, out = sys.argv[1], sys.argv[2]
    overrides = [a.split("=", 1) for a in sys.argv[3:]]
    nb = nbformat.read(path, as_version=4)
    original = list(range(len(nb.cells)))
    if overrides:
        at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", []))
        src = "\n".join("%s = %r" % (name, _value(value)) for name, value in overrides)
        nb.cells.insert(at + 1, nbformat.v4.new_code_cell(src))
        original.insert(at + 1, None)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}}
    )
    error = None
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError:
        pass
    cells = {}
    for pos, cell in enumerate(nb.cells):
        index = original[pos]
        if index is None or cell.cell_type != "code":
            continue
        text = []
        for o in cell.get("outputs", []):
            if o.output_type == "stream":
                text.append(o.text)
            elif o.output_type == "display_data" and not any(k.startswith("image/") for k in o.data):
                text.append(o.data.get("text/plain", "") + "\n")
            elif o.output_type == "error" and error is None:
                error = {"cell": index, "ename": o.ename, "evalue": o.evalue}
        cells[str(index)] = "".join(text)
    with open(out, "w") as f:
        json.dump({"cells": cells, "error": error}, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
