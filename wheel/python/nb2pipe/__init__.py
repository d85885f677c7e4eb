"""nb2pipe's IPython extension: `%load_ext nb2pipe`, then

    %nb2pipe runs [--pipeline P] [--data DIR|s3://...] [--runs DIR]
    %nb2pipe inputs TASK [--run ID] [--pipeline P] [--data DIR|s3://...] [--runs DIR]
    %nb2pipe outputs TASK [--run ID] ...

`inputs` puts into the kernel the values TASK received in a run of `nb2pipe run` (the
latest run of TASK by default), so its cells can be run again on exactly them;
`outputs` the values it handed on. Values are read by the task runtime itself
(nb2pipe._runtime is the file every task runs with), so the store has one
implementation. Run records are looked up in --runs, else --data (a folder), else
build/nb2pipe-data and build/nb2pipe-runs below the kernel's working directory (the
notebook's folder): where `nb2pipe run NOTEBOOK` puts them.
"""
import argparse
import os
import shlex

from . import _runtime

__all__ = ["load_ipython_extension", "find_run", "load"]

_DEFAULT_RUNS = (os.path.join("build", "nb2pipe-data"), os.path.join("build", "nb2pipe-runs"))


class Nb2pipeError(Exception):
    pass


def _runs_dirs(data=None, runs=None):
    if runs:
        return [runs]
    if data and not data.startswith("s3://"):
        return [data]
    return [d for d in _DEFAULT_RUNS if os.path.isdir(d)]


def _records(data=None, runs=None, pipeline=None):
    dirs = _runs_dirs(data, runs)
    out = []
    for d in dirs:
        out.extend(_runtime.list_runs(d, pipeline))
    if not out:
        where = ", ".join(dirs) if dirs else " or ".join(_DEFAULT_RUNS) + " (in %s)" % os.getcwd()
        raise Nb2pipeError("no runs of %s in %s: run `nb2pipe run NOTEBOOK` first, or give --data/--runs" % (pipeline or "any pipeline", where))
    return out


def find_run(task, run=None, data=None, runs=None, pipeline=None):
    """The run record to read TASK's values from: run `run` (an id, or a prefix of
    one), else the latest run that has TASK."""
    recs = [r for r in _records(data, runs, pipeline) if _runtime.task_record(r, task) is not None]
    if not recs:
        raise Nb2pipeError("no run has a task %r" % task)
    pipelines = sorted({r["pipeline"] for r in recs})
    if len(pipelines) > 1:
        raise Nb2pipeError("task %r is in pipelines %s: choose one with --pipeline" % (task, ", ".join(pipelines)))
    if run is None:
        return recs[0]
    hits = [r for r in recs if str(r.get("run_id")) == run] or [r for r in recs if str(r.get("run_id", "")).startswith(run)]
    if len(hits) != 1:
        ids = ", ".join(str(r.get("run_id")) for r in recs[:10])
        raise Nb2pipeError("%s run %r of task %r; runs: %s" % ("no" if not hits else "more than one", run, task, ids))
    return hits[0]


def load(task, which="inputs", run=None, data=None, runs=None, pipeline=None):
    """(record, {name: value}): TASK's inputs or outputs in the run."""
    rec = find_run(task, run, data, runs, pipeline)
    try:
        values = _runtime.task_values(rec, task, which, data)
    except LookupError as e:
        raise Nb2pipeError(str(e.args[0]))
    except SystemExit:
        raise Nb2pipeError("the data store of run %s is not readable (the reason is printed above)" % rec.get("run_id"))
    return rec, values


def _type_name(v):
    t = type(v)
    return t.__name__ if t.__module__ == "builtins" else "%s.%s" % (t.__module__.split(".")[0], t.__name__)


def _describe_state(t):
    state = t.get("state", "?")
    err = t.get("error") or {}
    if state == "failed" and err.get("cell") is not None:
        return "%s (cell %s, line %s: %s)" % (state, err["cell"], err.get("line"), err.get("message", ""))
    if t.get("reason") and state != "succeeded":
        return "%s (%s)" % (state, t["reason"])
    return state


def _parser(prog, task):
    p = argparse.ArgumentParser(prog="%nb2pipe " + prog, add_help=False, exit_on_error=False)
    if task:
        p.add_argument("task")
        p.add_argument("--run")
    p.add_argument("--data")
    p.add_argument("--runs")
    p.add_argument("--pipeline")
    return p


USAGE = __doc__.split("\n\n")[1]


def _magic(shell, line):
    from IPython.core.error import UsageError

    words = shlex.split(line)
    if not words or words[0] not in ("runs", "inputs", "outputs"):
        raise UsageError("usage:\n" + USAGE)
    cmd = words[0]
    try:
        args = _parser(cmd, cmd != "runs").parse_args(words[1:])
    except (argparse.ArgumentError, SystemExit) as e:
        raise UsageError("%s\nusage:\n%s" % (e, USAGE))
    try:
        if cmd == "runs":
            _print_runs(_records(args.data, args.runs, args.pipeline))
            return None
        rec, values = load(args.task, cmd, args.run, args.data, args.runs, args.pipeline)
    except Nb2pipeError as e:
        raise UsageError(str(e))
    t = _runtime.task_record(rec, args.task)
    if cmd == "inputs":
        # The run's parameter overrides: the task received them too.
        values = dict(rec.get("params") or {}, **values)
    shell.push(values)
    print(
        "%s of task %r, run %s (%s): %s"
        % (cmd, args.task, rec.get("run_id"), _describe_state(t), ", ".join("%s (%s)" % (k, _type_name(v)) for k, v in sorted(values.items())) or "none")
    )
    return None


def _print_runs(recs):
    for rec in recs:
        print("%s  run %s%s" % (rec.get("pipeline"), rec.get("run_id"), "  (latest)" if rec.get("_latest") else ""))
        width = max([len(t.get("name", "")) for t in rec["tasks"]] + [4])
        for t in rec["tasks"]:
            print("  %-*s  %s" % (width, t.get("name"), _describe_state(t)))


def load_ipython_extension(ipython):
    def nb2pipe(line):
        return _magic(ipython, line)

    nb2pipe.__doc__ = __doc__
    ipython.register_magic_function(nb2pipe, "line", "nb2pipe")
