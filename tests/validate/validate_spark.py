"""Spark operator objects (sparkoperator.k8s.io/v1beta2): every SparkApplication and
ScheduledSparkApplication, standalone or in an Argo resource template's manifest, against
the operator's own CRD schema (tests/data/spark-operator, made strict: unknown fields
rejected), with its name short enough for the operator's derived names, and the pod
fields it embeds (driver and executor env, mounts, volumes, securityContext, scheduling)
through kubernetes-validate as a Pod."""
import copy
import os
import sys

import jsonschema
import kubernetes_validate
import yaml

from common import Report, load_docs

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = os.path.join(HERE, "..", "data", "spark-operator")
FILES = {
    "SparkApplication": "sparkoperator.k8s.io_sparkapplications.yaml",
    "ScheduledSparkApplication": "sparkoperator.k8s.io_scheduledsparkapplications.yaml",
}
K8S_VERSION = "1.33.0"
# `<name>-ui-svc` must be a 63-character DNS label; a generated name adds 5 characters.
NAME_MAX = 56


def strict(s):
    if isinstance(s, list):
        return [strict(x) for x in s]
    if not isinstance(s, dict):
        return s
    s = {k: strict(v) for k, v in s.items()}
    if s.pop("x-kubernetes-int-or-string", False):
        s.pop("type", None)
        s["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if s.pop("nullable", False) and "type" in s:
        s["type"] = [s["type"], "null"]
    preserve = s.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in s and not preserve and "additionalProperties" not in s:
        s["additionalProperties"] = False
    return s


def schema(kind):
    with open(os.path.join(SCHEMAS, FILES[kind])) as f:
        crd = yaml.safe_load(f)
    (v,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta2"]
    s = strict(v["schema"]["openAPIV3Schema"])
    s["properties"]["apiVersion"] = {"const": "sparkoperator.k8s.io/v1beta2"}
    s["properties"]["kind"] = {"const": kind}
    s["required"] = ["apiVersion", "kind", "metadata", "spec"]
    return s


VALIDATORS = {k: jsonschema.Draft202012Validator(schema(k)) for k in FILES}


def as_pod(role, spec, name):
    container = {"name": "spark-kubernetes-" + name, "image": spec.get("image", "x")}
    for k in ("env", "envFrom", "volumeMounts", "securityContext"):
        if k in role:
            container[k] = role[k]
    pod = {"containers": [container]}
    for k in ("nodeSelector", "tolerations", "affinity"):
        if k in role:
            pod[k] = role[k]
    if "podSecurityContext" in role:
        pod["securityContext"] = role["podSecurityContext"]
    if "volumes" in spec:
        pod["volumes"] = spec["volumes"]
    meta = {"name": "p"}
    for k in ("labels", "annotations"):
        if k in role:
            meta[k] = role[k]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod}


def check(r, path, doc):
    kind = doc.get("kind")
    bad = False
    for e in sorted(VALIDATORS[kind].iter_errors(doc), key=lambda e: list(e.path)):
        r.add(path, "%s %s: %s" % (kind, "/".join(map(str, e.path)), e.message))
        bad = True
    meta = doc.get("metadata", {})
    name = meta.get("name") or meta.get("generateName", "") + "xxxxx"
    if len(name) > NAME_MAX:
        r.add(path, "%s name %s is longer than %d characters" % (kind, name, NAME_MAX))
        bad = True
    spec = doc.get("spec", {})
    if kind == "ScheduledSparkApplication":
        spec = spec.get("template", {})
    for role in ("driver", "executor"):
        pod = as_pod(spec.get(role, {}), spec, role)
        try:
            kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            r.add(path, "%s %s as a pod: %s" % (kind, role, e.message))
            bad = True
    return bad


def main(paths):
    r = Report()
    for path in paths:
        bad = False
        found = 0
        for doc in load_docs(path):
            if doc.get("kind") in FILES:
                found += 1
                bad |= check(r, path, doc)
            for t in doc.get("spec", {}).get("templates", []) or []:
                manifest = (t.get("resource") or {}).get("manifest")
                if manifest is not None:
                    found += 1
                    bad |= check(r, path, yaml.safe_load(manifest))
        if not found:
            r.add(path, "no SparkApplication in the file")
            bad = True
        if not bad:
            print("ok", path)
    r.finish()


if __name__ == "__main__":
    main(sys.argv[1:])
