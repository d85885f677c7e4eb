"""Kubeflow Pipelines: the pipeline spec parsed into kfp's PipelineSpec proto, the
platform spec into PlatformSpec and each executor's config into kfp-kubernetes'
KubernetesExecutorConfig (ParseDict rejects unknown fields), then the file loaded as
a component with kfp.components.load_component_from_file; component, executor and
task names of at most 63 characters; KFP's cache off for every task."""
import sys

from google.protobuf import json_format
from kfp import components
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from common import Report, load_docs


def main(paths):
    r = Report()
    for path in paths:
        bad = False
        docs = load_docs(path)
        if len(docs) not in (1, 2):
            r.add(path, "expected the pipeline spec and an optional platform spec, found %d documents" % len(docs))
            continue
        try:
            spec = json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
            # KFP's own cache keys on image, args and parameters, not on the values in
            # the store: it must be off, so only the runtime's key decides.
            for name, task in spec.root.dag.tasks.items():
                if task.caching_options.enable_cache:
                    r.add(path, "task %s has KFP's cache on" % name)
                    bad = True
            if len(docs) == 2:
                json_format.ParseDict(docs[1], pipeline_spec_pb2.PlatformSpec())
                execs = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
                for name, cfg in execs.items():
                    if name not in docs[0]["deploymentSpec"]["executors"]:
                        r.add(path, "platform executor %s is not in the pipeline spec" % name)
                        bad = True
                    json_format.ParseDict(cfg, kubernetes_executor_config_pb2.KubernetesExecutorConfig())
            for what in ("components", "deploymentSpec"):
                names = docs[0][what] if what == "components" else docs[0][what]["executors"]
                for n in list(names) + list(docs[0]["root"]["dag"]["tasks"]):
                    if len(n) > 63:
                        r.add(path, "name %s is longer than 63 characters" % n)
                        bad = True
            comp = components.load_component_from_file(path)
            if comp.name != docs[0]["pipelineInfo"]["name"].replace("-", "_") and comp.name != docs[0]["pipelineInfo"]["name"]:
                r.add(path, "loaded component is named %r" % comp.name)
                bad = True
        except Exception as e:
            r.add(path, "%s: %s" % (type(e).__name__, e))
            bad = True
        if not bad:
            print("ok", path)
    r.finish()


if __name__ == "__main__":
    main(sys.argv[1:])
