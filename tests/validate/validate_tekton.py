"""Tekton (tekton.dev/v1): each document against the CRD schema of its kind
(tests/data/tekton, strict: unknown fields rejected), plus webhook rules the schemas
cannot say: every step named, `$(params.x)` only for declared params, runAfter and
taskRef names that exist in the file, workspace bindings to declared workspaces, names
of at most 63 characters. A file of PipelineRuns alone (`<pipeline>-run.yaml`) is
checked against the Pipeline of its sibling `<pipeline>.yaml`."""
import json
import os
import re
import sys

import jsonschema

from common import Report, load_docs

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = os.path.join(HERE, "..", "data", "tekton")
FILES = {"Task": "task.json", "Pipeline": "pipeline.json", "PipelineRun": "pipelinerun.json", "TaskRun": "taskrun.json"}
PARAM_REF = re.compile(r"\$\(params\.([^)]*)\)")


def schema(kind):
    with open(os.path.join(SCHEMAS, FILES[kind])) as f:
        return json.load(f)


def strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, list):
        for x in v:
            yield from strings(x)
    elif isinstance(v, dict):
        for x in v.values():
            yield from strings(x)


def main(paths):
    r = Report()
    for path in paths:
        bad = False
        docs = load_docs(path)
        context = docs
        kinds = {d.get("kind") for d in docs}
        if kinds == {"PipelineRun"} and path.endswith("-run.yaml"):
            sibling = path[: -len("-run.yaml")] + ".yaml"
            if os.path.exists(sibling):
                context = docs + load_docs(sibling)
        if "PipelineRun" in kinds and kinds != {"PipelineRun"}:
            r.add(path, "a PipelineRun (kubectl create) shares the file with %s (kubectl apply)" % sorted(kinds - {"PipelineRun"}))
            bad = True
        tasks = {d["metadata"]["name"]: d for d in context if d.get("kind") == "Task"}
        pipelines = {d["metadata"]["name"]: d for d in context if d.get("kind") == "Pipeline"}
        for doc in docs:
            meta = doc.get("metadata", {})
            name = meta.get("name") or meta.get("generateName", "") + "xxxxx"
            if len(name) > 63:
                r.add(path, "%s name %s is longer than 63 characters" % (doc.get("kind"), name))
                bad = True
            kind = doc.get("kind")
            if kind not in FILES:
                r.add(path, "unknown kind %r" % kind)
                bad = True
                continue
            v = jsonschema.Draft202012Validator(schema(kind))
            for e in sorted(v.iter_errors(doc), key=lambda e: list(e.path)):
                r.add(path, "%s %s: %s" % (kind, "/".join(map(str, e.path)), e.message))
                bad = True
            spec = doc.get("spec", {})
            if kind == "Task":
                declared = {p["name"] for p in spec.get("params", [])}
                for i, s in enumerate(spec.get("steps", [])):
                    if not s.get("name"):
                        r.add(path, "Task %s: step %d has no name" % (doc["metadata"]["name"], i))
                        bad = True
                for s in strings(spec):
                    for ref in PARAM_REF.findall(s):
                        if ref not in declared:
                            r.add(path, "Task %s: $(params.%s) is not a declared param" % (doc["metadata"]["name"], ref))
                            bad = True
            if kind == "Pipeline":
                for t in spec.get("tasks", []):
                    if len(t["name"]) > 63:
                        r.add(path, "Pipeline task name %s is longer than 63 characters" % t["name"])
                        bad = True
                declared = {p["name"] for p in spec.get("params", [])}
                wss = {w["name"] for w in spec.get("workspaces", [])}
                names = {t["name"] for t in spec.get("tasks", [])}
                for t in spec.get("tasks", []):
                    for a in t.get("runAfter", []):
                        if a not in names:
                            r.add(path, "Pipeline task %s runs after unknown %s" % (t["name"], a))
                            bad = True
                    ref = t.get("taskRef", {}).get("name")
                    if ref not in tasks:
                        r.add(path, "Pipeline task %s refers to Task %s, not in the file" % (t["name"], ref))
                        bad = True
                    else:
                        tparams = {p["name"] for p in tasks[ref]["spec"].get("params", [])}
                        given = {p["name"] for p in t.get("params", [])}
                        if tparams - given:
                            r.add(path, "Pipeline task %s misses params %s" % (t["name"], sorted(tparams - given)))
                            bad = True
                    for w in t.get("workspaces", []):
                        if w["workspace"] not in wss:
                            r.add(path, "Pipeline task %s binds undeclared workspace %s" % (t["name"], w["workspace"]))
                            bad = True
                    for s in strings(t.get("params", [])):
                        for ref in PARAM_REF.findall(s):
                            if ref not in declared:
                                r.add(path, "Pipeline task %s: $(params.%s) is not a pipeline param" % (t["name"], ref))
                                bad = True
            if kind == "PipelineRun":
                ref = spec.get("pipelineRef", {}).get("name")
                if ref not in pipelines:
                    r.add(path, "PipelineRun refers to Pipeline %s, not in the file" % ref)
                    bad = True
                else:
                    pts = {t["name"] for t in pipelines[ref]["spec"]["tasks"]}
                    for trs in spec.get("taskRunSpecs", []):
                        if trs["pipelineTaskName"] not in pts:
                            r.add(path, "taskRunSpecs names unknown pipeline task %s" % trs["pipelineTaskName"])
                            bad = True
        if not bad:
            print("ok", path)
    r.finish()


if __name__ == "__main__":
    main(sys.argv[1:])
