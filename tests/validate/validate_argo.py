"""Argo Workflows: hera's pydantic models (generated from Argo 4's OpenAPI) in strict
mode, plus unknown keys (the models ignore them): every key of the document must
survive a validate → dump round trip; and Argo's name limits (63 characters for
workflows, templates and DAG tasks, 52 for a CronWorkflow)."""
import sys

from hera.workflows import models

from common import Report, load_docs

KINDS = {"Workflow": models.Workflow, "CronWorkflow": models.CronWorkflow}


def unknown_keys(doc, dumped, where, out):
    if isinstance(doc, dict):
        if not isinstance(dumped, dict):
            out.append("%s: not an object in the model" % where)
            return
        for k, v in doc.items():
            if k not in dumped:
                out.append("%s.%s: unknown key" % (where, k))
            else:
                unknown_keys(v, dumped[k], "%s.%s" % (where, k), out)
    elif isinstance(doc, list):
        for i, (a, b) in enumerate(zip(doc, dumped or [])):
            unknown_keys(a, b, "%s[%d]" % (where, i), out)


def main(paths):
    r = Report()
    for path in paths:
        docs = load_docs(path)
        if len(docs) != 1:
            r.add(path, "expected one document, found %d" % len(docs))
            continue
        doc = docs[0]
        model = KINDS.get(doc.get("kind"))
        if model is None:
            r.add(path, "kind %r is not Workflow or CronWorkflow" % doc.get("kind"))
            continue
        try:
            m = model.model_validate(doc, strict=True)
        except Exception as e:  # pydantic.ValidationError
            r.add(path, str(e))
            continue
        out = []
        meta = doc.get("metadata", {})
        limit = 52 if doc["kind"] == "CronWorkflow" else 63
        name = meta.get("name") or meta.get("generateName", "") + "xxxxx"
        if len(name) > limit:
            out.append("$.metadata: name %s is longer than %d characters" % (name, limit))
        spec = doc["spec"].get("workflowSpec", doc["spec"])
        for t in spec.get("templates", []):
            names = [t["name"]] + [x["name"] for x in (t.get("dag") or {}).get("tasks", [])]
            out.extend("$.templates: name %s is longer than 63 characters" % n for n in names if len(n) > 63)
        unknown_keys(doc, m.model_dump(by_alias=True, exclude_none=True, mode="json"), "$", out)
        for o in out:
            r.add(path, o)
        if not out:
            print("ok", path)
    r.finish()


if __name__ == "__main__":
    main(sys.argv[1:])
