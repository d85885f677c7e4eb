"""Runs code cells in a real IPython kernel (nbclient), errors allowed, for the tests of
the IPython extension (tests/ipython.rs).

    kernel.py CELLS.json FOLDER OUT.json

CELLS.json: a list of cell sources; the kernel's working directory is FOLDER. OUT.json:
one {"text", "error"} per cell: the stream output, and {"ename", "evalue"} or null."""
import json
import sys

import nbclient
import nbformat


def main():
    cells, folder, out = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": folder}}
    ).execute()
    result = []
    for cell in nb.cells:
        text, error = "", None
        for o in cell.outputs:
            if o.output_type == "stream":
                text += o.text
            elif o.output_type == "error":
                error = {"ename": o.ename, "evalue": o.evalue}
        result.append({"text": text, "error": error})
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
