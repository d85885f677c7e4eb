#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target from the fixtures and docs.

fuzz/seeds/<target>/<name>: notebooks for `notebook` and `convert`, code cells for
`analysis`, tag lists (first byte 0) and project files (first byte 1) for `settings`.
"""
import hashlib
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "fuzz" / "seeds"
MAX = 64 * 1024  # the fuzzers' -max_len: bigger inputs only slow them down


def put(target, data):
    if len(data) > MAX or not data:
        return
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def source(cell):
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else str(s)


for nb_path in sorted(ROOT.glob("fixtures/**/*.ipynb")):
    raw = nb_path.read_bytes()
    put("notebook", raw)
    put("convert", raw)
    try:
        nb = json.loads(raw)
    except ValueError:
        continue
    if not isinstance(nb, dict):
        continue
    for cell in nb.get("cells", []):
        if not isinstance(cell, dict):
            continue
        if cell.get("cell_type") == "code":
            put("analysis", source(cell).encode())
        md = cell.get("metadata", {})
        tags = md.get("tags", []) if isinstance(md, dict) else []
        if tags and all(isinstance(t, str) for t in tags):
            put("settings", b"\x00" + "\n".join(tags).encode())

for toml in sorted(ROOT.glob("fixtures/**/*.toml")):
    put("settings", b"\x01" + toml.read_bytes())
for doc in sorted(ROOT.glob("docs/*.md")):
    text = doc.read_text()
    for block in re.findall(r"```toml\n(.*?)```", text, re.S):
        put("settings", b"\x01" + block.encode())
    for tag in set(re.findall(r"`((?:task|after|cpu|memory|gpu|secret|env|retries|timeout|image|toleration|node|label|pool|cache)[:=][^`\n]*)`", text)):
        put("settings", b"\x00" + tag.encode())

for t in sorted(p.name for p in OUT.iterdir()):
    print(t, len(list((OUT / t).iterdir())))
