#!/usr/bin/env python
"""Import an Airflow DAG file offline and describe what Airflow sees, as JSON.

Run it with the python of an Airflow venv made by tests/env/python-envs.sh
(NB2PIPE_PY_AIRFLOW3 or NB2PIPE_PY_AIRFLOW2):

    $NB2PIPE_PY_AIRFLOW3 tests/env/airflow_probe.py path/to/dag.py [--params JSON]
        [--logical-date 2024-01-01T00:00:00+00:00] [--run-id r1] [--vars JSON] [--out FILE]

Works on Airflow 3.x (DagBag from airflow.dag_processing.dagbag) and 2.10
(airflow.models.dagbag). No database, no Kubernetes cluster, no network.

Output (stdout, or --out FILE), one JSON object:

    {
      "airflow_version": "3.3.2", "cncf_kubernetes_provider_version": "10.25.0",
      "import_errors": {file: message},          # DAG file import problems land here
      "dags": {dag_id: {
          "tasks": [task_id, ...],                # sorted
          "edges": [[upstream, downstream], ...], # sorted
          "schedule": "@daily", "params": {...}, "tags": [...], "catchup": bool,
          "start_date": iso, "fileloc": path,
          "task_details": {task_id: {"operator": class name, "pool", "pool_slots",
                           "retries", "retry_delay_seconds", "execution_timeout_seconds",
                           "trigger_rule", "queue", "params", "kubernetes_conn_id"?}},
          "pods": {task_id: V1Pod as API dict},           # KubernetesPodOperator tasks only
          "rendered_pods": {task_id: V1Pod as API dict},  # after Jinja rendering
          "pod_errors": {task_id: message}, "render_errors": {task_id: message},
          "pod_build_mode": {task_id: "offline-kubeconfig" | "dry-run" | "stub-hook"}}},
      "pods": {...}, "rendered_pods": {...}, "pod_errors": {...}, "render_errors": {...}
    }

The top-level "pods"/"rendered_pods"/"pod_errors"/"render_errors" repeat the per-DAG
ones keyed by task_id; when the file defines more than one DAG they are keyed
"dag_id.task_id" instead.

Exit status is non-zero only if this probe itself crashes. A DAG file that fails to
import, or a pod that fails to build or render, is reported in the JSON (exit 0).

How build_pod_request_obj() works without a cluster (both Airflow 3.3 / provider
10.25 and Airflow 2.10 / provider 10.10): the operator's hook needs a Kubernetes
connection and a kube config to decide `airflow_kpo_in_cluster`. The probe points
every KPO's kubernetes_conn_id at an env-var connection (AIRFLOW_CONN_<ID>) whose
extra `kube_config_path` is a throw-away kubeconfig for https://127.0.0.1:9; loading
it never contacts the server. If that still fails (e.g. the task sets in_cluster=True),
it falls back to build_pod_request_obj(context, dry_run=True) where the provider has
it (>= 10.2x), else to a stub hook injected into the operator's cached `hook`.

Pod names get a random suffix and secret volumes a random name (Airflow does this):
compare those fields by prefix. The rendered pod is built after
render_template_fields() with a fake context (params = DAG params + task params +
--params, run_id, ds, ts, logical_date, data_interval_*, macros, var from --vars).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
from datetime import datetime, timedelta, timezone

KUBECONFIG_TEXT = """\
apiVersion: v1
kind: Config
clusters:
- name: offline
  cluster: {server: "https://127.0.0.1:9"}
users:
- name: offline
  user: {token: offline}
contexts:
- name: offline
  context: {cluster: offline, user: offline, namespace: default}
current-context: offline
"""


def _prepare_environment(tmp: str) -> str:
    """Environment Airflow needs to import and parse DAGs without a database."""
    os.environ.setdefault("AIRFLOW_HOME", os.path.join(tmp, "airflow-home"))
    os.makedirs(os.environ["AIRFLOW_HOME"], exist_ok=True)
    # DagBag on Airflow 3.3 has no include_examples argument: it reads this setting.
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    kubeconfig = os.path.join(tmp, "kubeconfig")
    with open(kubeconfig, "w") as fh:
        fh.write(KUBECONFIG_TEXT)
    # Never let a developer's real kube config leak in.
    os.environ["KUBECONFIG"] = kubeconfig
    _set_connection("kubernetes_default", kubeconfig)
    return kubeconfig


def _set_connection(conn_id: str | None, kubeconfig: str) -> None:
    if not conn_id:
        return
    var = "AIRFLOW_CONN_" + conn_id.upper()
    os.environ.setdefault(
        var,
        json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": kubeconfig}}),
    )


def _jsonable(value):
    """Best-effort conversion of Airflow/param values into JSON-friendly ones."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    return str(value)


def _params_values(params) -> dict:
    if params is None:
        return {}
    if hasattr(params, "dump"):
        try:
            return dict(params.dump())
        except Exception:  # a Param without default raises on dump on some versions
            pass
    out = {}
    for key in list(params.keys()):
        try:
            out[key] = params[key]
        except Exception:
            out[key] = None
    return out


def _schedule(dag):
    """The schedule as written ("@daily", a cron string, seconds for a timedelta), or None."""
    for attr in ("schedule", "schedule_interval"):
        value = getattr(dag, attr, None)
        if isinstance(value, (str, timedelta)):
            return _jsonable(value)
    timetable = getattr(dag, "timetable", None)
    if timetable is None or type(timetable).__name__ == "NullTimetable":
        return None
    for attr in ("_expression", "expression", "summary"):
        value = getattr(timetable, attr, None)
        if isinstance(value, str):
            return value
    return type(timetable).__name__


class _StubHook:
    """Stands in for KubernetesHook when nothing else works (reported as stub-hook)."""

    is_in_cluster = False

    def get_namespace(self):
        return None

    def get_xcom_sidecar_container_image(self):
        return None

    def get_xcom_sidecar_container_resources(self):
        return None

    def get_xcom_sidecar_container_security_context(self):
        return None


def _build_pod(op, context):
    """Return (pod, mode). Raises the first error if every way fails."""
    import inspect

    try:
        return op.build_pod_request_obj(context), "offline-kubeconfig"
    except Exception as first:
        err = first
    try:
        params = inspect.signature(op.build_pod_request_obj).parameters
    except (TypeError, ValueError):
        params = {}
    if "dry_run" in params:
        try:
            return op.build_pod_request_obj(context, dry_run=True), "dry-run"
        except Exception:
            pass
    try:
        # `hook` is a functools.cached_property: an entry in __dict__ wins over it, and
        # writing __dict__ directly bypasses BaseOperator.__setattr__.
        op.__dict__["hook"] = _StubHook()
        return op.build_pod_request_obj(context), "stub-hook"
    except Exception:
        raise err


def _macros_module():
    for name in ("airflow.sdk.execution_time.macros", "airflow.macros"):
        try:
            return __import__(name, fromlist=["_"])
        except Exception:
            continue
    return None


class _VarValues:
    def __init__(self, values: dict, as_json: bool):
        self._values = values
        self._json = as_json

    def _get(self, key):
        if key not in self._values:
            raise KeyError(f"Variable {key!r} not given to the probe (use --vars)")
        value = self._values[key]
        if self._json and isinstance(value, str):
            return json.loads(value)
        return value

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        return self._get(key)

    def get(self, key, default=None):
        try:
            return self._get(key)
        except KeyError:
            return default


class _VarAccessor:
    def __init__(self, values: dict):
        self.value = _VarValues(values, as_json=False)
        self.json = _VarValues(values, as_json=True)


class _FakeTaskInstance:
    """Just what templates and KubernetesPodOperator._get_ti_pod_labels read."""

    def __init__(self, dag, op, run_id, logical_date):
        self.dag_id = dag.dag_id
        self.task_id = op.task_id
        self.task = op
        self.run_id = run_id
        self.map_index = -1
        self.try_number = 1
        self.max_tries = getattr(op, "retries", 0) or 0
        self.logical_date = logical_date
        self.execution_date = logical_date
        self.hostname = "nb2pipe-probe"

    def xcom_pull(self, *args, **kwargs):
        return None

    def xcom_push(self, *args, **kwargs):
        return None


class _FakeDagRun:
    def __init__(self, dag, run_id, logical_date):
        self.dag_id = dag.dag_id
        self.run_id = run_id
        self.logical_date = logical_date
        self.execution_date = logical_date
        self.data_interval_start = logical_date
        self.data_interval_end = logical_date + timedelta(days=1)
        self.conf = {}
        self.run_type = "manual"
        self.external_trigger = True


def _context(dag, op, args) -> dict:
    logical_date = datetime.fromisoformat(args.logical_date)
    if logical_date.tzinfo is None:
        logical_date = logical_date.replace(tzinfo=timezone.utc)
    interval_end = logical_date + timedelta(days=1)
    params = {}
    params.update(_params_values(getattr(dag, "params", None)))
    params.update(_params_values(getattr(op, "params", None)))
    params.update(json.loads(args.params) if args.params else {})
    ds = logical_date.strftime("%Y-%m-%d")
    ts = logical_date.isoformat()
    ti = _FakeTaskInstance(dag, op, args.run_id, logical_date)
    ctx = {
        "ti": ti,
        "task_instance": ti,
        "dag_run": _FakeDagRun(dag, args.run_id, logical_date),
        "dag": dag,
        "task": op,
        "params": params,
        "run_id": args.run_id,
        "ds": ds,
        "ds_nodash": ds.replace("-", ""),
        "ts": ts,
        "ts_nodash": logical_date.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": ts.replace("-", "").replace(":", ""),
        "logical_date": logical_date,
        "data_interval_start": logical_date,
        "data_interval_end": interval_end,
        "task_instance_key_str": f"{dag.dag_id}__{op.task_id}__{ds.replace('-', '')}",
        "map_index_template": None,
        "inlets": [],
        "outlets": [],
        "var": _VarAccessor(json.loads(args.vars) if args.vars else {}),
        "conf": None,
        "test_mode": True,
        "expanded_ti_count": None,
    }
    macros = _macros_module()
    if macros is not None:
        ctx["macros"] = macros
    return ctx


def _serialize_pod(pod):
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(pod)


def _short_error(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text[-4000:]


def probe(args) -> dict:
    tmp = tempfile.mkdtemp(prefix="nb2pipe-airflow-probe-")
    kubeconfig = _prepare_environment(tmp)

    import airflow

    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.x

        bag_kwargs = {}
    except ImportError:
        from airflow.models.dagbag import DagBag  # Airflow 2.x

        bag_kwargs = {"include_examples": False}
    try:
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    except Exception:  # provider missing: still report the DAGs
        KubernetesPodOperator = None
    try:
        from airflow.providers.cncf.kubernetes import __version__ as provider_version
    except Exception:
        provider_version = None

    dag_file = os.path.abspath(args.dag_file)
    try:
        bag = DagBag(dag_folder=dag_file, safe_mode=False, **bag_kwargs)
    except SystemExit as exc:  # a DAG file calling sys.exit() is an import error too
        bag = None
        exit_error = f"SystemExit({exc.code!r}) while importing the DAG file"

    result = {
        "airflow_version": getattr(airflow, "__version__", None),
        "cncf_kubernetes_provider_version": provider_version,
        "import_errors": (
            {dag_file: exit_error}
            if bag is None
            else {str(k): str(v) for k, v in bag.import_errors.items()}
        ),
        "dags": {},
    }
    top = {"pods": {}, "rendered_pods": {}, "pod_errors": {}, "render_errors": {}}
    dags = {} if bag is None else bag.dags
    multi = len(dags) > 1

    for dag_id in sorted(dags):
        dag = dags[dag_id]
        tasks = sorted(t.task_id for t in dag.tasks)
        edges = sorted(
            [t.task_id, down] for t in dag.tasks for down in sorted(t.downstream_task_ids)
        )
        entry = {
            "tasks": tasks,
            "edges": edges,
            "schedule": _schedule(dag),
            "params": _jsonable(_params_values(getattr(dag, "params", None))),
            "tags": _jsonable(set(getattr(dag, "tags", None) or [])),
            "catchup": getattr(dag, "catchup", None),
            "start_date": _jsonable(getattr(dag, "start_date", None)),
            "fileloc": getattr(dag, "fileloc", None),
            "task_details": {},
            "pods": {},
            "rendered_pods": {},
            "pod_errors": {},
            "render_errors": {},
            "pod_build_mode": {},
        }
        for op in sorted(dag.tasks, key=lambda t: t.task_id):
            tid = op.task_id
            detail = {
                "operator": type(op).__name__,
                "pool": getattr(op, "pool", None),
                "pool_slots": getattr(op, "pool_slots", None),
                "retries": getattr(op, "retries", None),
                "retry_delay_seconds": _jsonable(getattr(op, "retry_delay", None)),
                "execution_timeout_seconds": _jsonable(getattr(op, "execution_timeout", None)),
                "trigger_rule": _jsonable(str(getattr(getattr(op, "trigger_rule", None), "value", getattr(op, "trigger_rule", None)))),
                "queue": getattr(op, "queue", None),
                "params": _jsonable(_params_values(getattr(op, "params", None))),
            }
            is_kpo = KubernetesPodOperator is not None and isinstance(op, KubernetesPodOperator)
            if is_kpo:
                detail["kubernetes_conn_id"] = getattr(op, "kubernetes_conn_id", None)
            entry["task_details"][tid] = detail
            if getattr(op, "template_spec", None) is not None:
                # SparkKubernetesOperator: its SparkApplication, rendered (no pod to build offline).
                try:
                    context = _context(dag, op, args)
                    op.render_template_fields(context=context, jinja_env=dag.get_template_env())
                    detail["spark"] = _jsonable(op.template_spec)
                except Exception as exc:
                    entry["render_errors"][tid] = _short_error(exc)
                continue
            if not is_kpo:
                continue
            key = f"{dag_id}.{tid}" if multi else tid
            _set_connection(getattr(op, "kubernetes_conn_id", None), kubeconfig)
            try:
                pod, mode = _build_pod(op, None)
                entry["pods"][tid] = _serialize_pod(pod)
                entry["pod_build_mode"][tid] = mode
            except Exception as exc:
                entry["pod_errors"][tid] = _short_error(exc)
            try:
                context = _context(dag, op, args)
                op.render_template_fields(context=context, jinja_env=dag.get_template_env())
                pod, _ = _build_pod(op, context)
                entry["rendered_pods"][tid] = _serialize_pod(pod)
            except Exception as exc:
                entry["render_errors"][tid] = _short_error(exc)
            for name in top:
                if tid in entry[name]:
                    top[name][key] = entry[name][tid]
        result["dags"][dag_id] = entry
    result.update(top)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dag_file")
    parser.add_argument("--params", help="JSON object merged over DAG/task params for rendering")
    parser.add_argument("--vars", help="JSON object of Airflow Variables for {{ var.value.X }}")
    parser.add_argument("--logical-date", default="2024-01-01T00:00:00+00:00")
    parser.add_argument("--run-id", default="r1")
    parser.add_argument("--out", help="write the JSON here instead of stdout")
    args = parser.parse_args(argv)

    # Airflow logs (and DAG files may print) to stdout: keep stdout for the JSON only.
    sys.stdout.flush()
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        result = probe(args)
    finally:
        sys.stdout.flush()
        os.dup2(real_stdout, 1)
        os.close(real_stdout)
    text = json.dumps(result, indent=2, sort_keys=True, default=str)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    else:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
