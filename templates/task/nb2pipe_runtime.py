"""nb2pipe task runtime: shipped beside every generated task (tasks/<task>/main.py).

Loads the values a task receives, saves the values downstream tasks need, runs the
IPython escapes the notebook used, and maps errors back to notebook cells.

Data store (NB2PIPE_DATA): a directory (local, or a mounted PersistentVolumeClaim) or
s3://bucket/prefix (endpoint from NB2PIPE_S3_ENDPOINT, credentials from the usual AWS_*
variables). Values live under <store>/<pipeline>/<run id>/<task>/<name>.<format>.
Formats, chosen at run time: pandas objects as Parquet when pyarrow is importable,
numpy arrays as .npy, everything else pickled (cloudpickle when importable).
"""
import io
import json
import os
import shlex
import subprocess
import sys
import time

_STATE = {}

# Sentinels written next to a value say which format it has.
_FORMATS = ("parquet", "npy", "pkl")


class TaskError(Exception):
    """A failure nb2pipe explains itself (missing input, unserialisable value...)."""


def _fail(message):
    sys.stderr.write("nb2pipe: " + message + "\n")
    sys.stderr.flush()
    raise SystemExit(1)


# ---------------------------------------------------------------- data store
class _LocalStore:
    def __init__(self, root):
        self.root = root

    def _path(self, key):
        return os.path.join(self.root, *key.split("/"))

    def put(self, key, data):
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp-%d" % os.getpid()
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def get(self, key):
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def exists(self, key):
        return os.path.exists(self._path(key))


class _S3Store:
    def __init__(self, url):
        import boto3  # imported only when the store is S3

        rest = url[len("s3://"):]
        self.bucket, _, prefix = rest.partition("/")
        self.prefix = prefix.strip("/")
        kwargs = {}
        endpoint = os.environ.get("NB2PIPE_S3_ENDPOINT")
        if endpoint:
            kwargs["endpoint_url"] = endpoint
        self.client = boto3.client("s3", **kwargs)

    def _key(self, key):
        return self.prefix + "/" + key if self.prefix else key

    def put(self, key, data):
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get(self, key):
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as e:  # botocore ClientError 404
            if getattr(e, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise

    def exists(self, key):
        return self.get(key) is not None


def store():
    if "store" not in _STATE:
        url = os.environ.get("NB2PIPE_DATA", os.path.join(os.getcwd(), ".nb2pipe-data"))
        _STATE["store"] = _S3Store(url) if url.startswith("s3://") else _LocalStore(url)
    return _STATE["store"]


def run_id():
    return os.environ.get("NB2PIPE_RUN_ID") or "local"


def _prefix(task):
    return "%s/%s/%s" % (_STATE["pipeline"], _safe(run_id()), task)


def _safe(s):
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in s)


# ---------------------------------------------------------------- formats
def _dumps(value):
    """(format, bytes) for a value."""
    mod = type(value).__module__ or ""
    if mod.startswith("pandas"):
        try:
            import pyarrow  # noqa: F401

            import pandas as pd

            if isinstance(value, (pd.DataFrame, pd.Series)):
                frame = value.to_frame() if isinstance(value, pd.Series) else value
                if all(isinstance(c, str) for c in frame.columns):
                    buf = io.BytesIO()
                    frame.to_parquet(buf)
                    fmt = "parquet-series" if isinstance(value, pd.Series) else "parquet"
                    return fmt, buf.getvalue()
        except ImportError:
            pass
    if mod.startswith("numpy") and type(value).__name__ == "ndarray" and value.dtype != object:
        import numpy as np

        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return "npy", buf.getvalue()
    try:
        import cloudpickle as pickler
    except ImportError:
        import pickle as pickler
    return "pkl", pickler.dumps(value)


def _loads(fmt, data):
    if fmt in ("parquet", "parquet-series"):
        import pandas as pd

        frame = pd.read_parquet(io.BytesIO(data))
        return frame.iloc[:, 0] if fmt == "parquet-series" else frame
    if fmt == "npy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    import pickle

    try:
        import cloudpickle  # noqa: F401  (registers nothing, but its pickles may need it)
    except ImportError:
        pass
    return pickle.loads(data)


# ---------------------------------------------------------------- task life cycle
def start(pipeline, task, notebook, inputs, outputs, line_map):
    _STATE.update(pipeline=pipeline, task=task, notebook=notebook, inputs=inputs, outputs=outputs, line_map=line_map, t0=time.time())
    sys.excepthook = _excepthook
    try:
        import matplotlib

        matplotlib.use("Agg")
    except Exception:
        pass
    import builtins

    if not hasattr(builtins, "display"):
        builtins.display = display


def parameters(defaults):
    """Defaults from the notebook, overridden by NB2PIPE_PARAMS (JSON) and
    NB2PIPE_PARAM_<NAME> (JSON, or text for string parameters)."""
    values = dict(defaults)
    raw = os.environ.get("NB2PIPE_PARAMS")
    if raw:
        try:
            given = json.loads(raw)
        except ValueError as e:
            _fail("NB2PIPE_PARAMS is not JSON: %s" % e)
        for k, v in given.items():
            if k in values:
                values[k] = _coerce(k, v, defaults[k])
    for k in defaults:
        env = os.environ.get("NB2PIPE_PARAM_" + k)
        if env is not None:
            try:
                v = json.loads(env)
            except ValueError:
                v = env
            values[k] = _coerce(k, v, defaults[k])
    return values


def _coerce(name, value, default):
    if default is None or value is None:
        return value
    kind = type(default)
    if kind is bool:
        if isinstance(value, str):
            if value.lower() in ("true", "1", "yes"):
                return True
            if value.lower() in ("false", "0", "no"):
                return False
            _fail("parameter %r must be true or false, got %r" % (name, value))
        return bool(value)
    if kind in (int, float) and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        try:
            return kind(value)
        except ValueError:
            _fail("parameter %r must be %s, got %r" % (name, kind.__name__, value))
    if kind is str and not isinstance(value, str):
        return json.dumps(value)
    return value


def load_inputs():
    values = {}
    s = store()
    for name, producer in sorted(_STATE["inputs"].items()):
        key = "%s/%s" % (_prefix(producer), name)
        meta = s.get(key + ".format")
        if meta is None:
            _fail(
                "input %r of task %r is missing: task %r should have produced it in run %r (store: %s)"
                % (name, _STATE["task"], producer, run_id(), os.environ.get("NB2PIPE_DATA", ".nb2pipe-data"))
            )
        fmt = meta.decode()
        values[name] = _loads(fmt, s.get(key + "." + fmt))
    return values


def finish(namespace):
    s = store()
    consumers = _STATE.get("consumers", {})
    for name in _STATE["outputs"]:
        if name not in namespace:
            _fail("task %r should produce %r for later tasks, but it was not bound when the task ended" % (_STATE["task"], name))
        value = namespace[name]
        try:
            fmt, data = _dumps(value)
        except Exception as e:
            _fail(
                "cannot save %r (a %s) produced by task %r for %s: %s"
                % (name, type(value).__name__, _STATE["task"], consumers.get(name, "the tasks downstream"), e)
            )
        key = "%s/%s" % (_prefix(_STATE["task"]), name)
        s.put(key + "." + fmt, data)
        s.put(key + ".format", fmt.encode())
    sys.stdout.flush()


# ---------------------------------------------------------------- IPython equivalents
def display(*objs, **kwargs):
    for o in objs:
        print(repr(o) if not isinstance(o, str) else o)


def _expand(cmd, g, l):
    """IPython's interpolation: {expr} and $name from the caller's namespace."""
    ns = dict(g)
    ns.update(l or {})

    class _Fmt(dict):
        def __missing__(self, key):
            return "{" + key + "}"

    out = []
    i = 0
    while i < len(cmd):
        c = cmd[i]
        if c == "$" and i + 1 < len(cmd) and cmd[i + 1] == "$":
            out.append("$")
            i += 2
        elif c == "$" and i + 1 < len(cmd) and (cmd[i + 1].isalpha() or cmd[i + 1] == "_"):
            j = i + 1
            while j < len(cmd) and (cmd[j].isalnum() or cmd[j] == "_"):
                j += 1
            name = cmd[i + 1:j]
            out.append(str(ns[name]) if name in ns else cmd[i:j])
            i = j
        elif c == "{":
            j = cmd.find("}", i)
            if j < 0:
                out.append(cmd[i:])
                break
            expr = cmd[i + 1:j]
            try:
                out.append(str(eval(expr, ns)))
            except Exception:
                out.append(cmd[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def sh(cmd, g=None, l=None):
    sys.stdout.flush()
    code = subprocess.call(_expand(cmd, g or {}, l), shell=True)
    if code != 0:
        print("nb2pipe: shell command exited with %d: %s" % (code, cmd), file=sys.stderr)
    return None


class SList(list):
    @property
    def s(self):
        return " ".join(self)

    @property
    def n(self):
        return "\n".join(self)

    l = property(lambda self: list(self))


def sh_capture(cmd, g=None, l=None):
    out = subprocess.run(_expand(cmd, g or {}, l), shell=True, stdout=subprocess.PIPE, universal_newlines=True).stdout
    return SList(out.splitlines())


def magic(line, g, l, cell, lineno):
    name, _, rest = line.partition(" ")
    rest = _expand(rest.strip(), g, l)
    if name == "env":
        if "=" in rest:
            k, _, v = rest.partition("=")
            os.environ[k.strip()] = v.strip()
            return None
        if " " in rest:
            k, _, v = rest.partition(" ")
            os.environ[k] = v.strip()
            return None
        return os.environ.get(rest) if rest else dict(os.environ)
    if name == "set_env":
        k, _, v = rest.partition(" ")
        os.environ[k] = v.strip()
        return None
    if name == "cd":
        os.chdir(os.path.expanduser(rest or "~"))
        return None
    if name == "pwd":
        return os.getcwd()
    if name in ("ls", "mkdir", "rm", "cp", "mv", "cat"):
        return sh(name + " " + rest, g, l)
    if name in ("system", "sx"):
        return sh_capture(rest, g, l)
    if name == "run":
        import runpy

        args = shlex.split(rest)
        g.update(runpy.run_path(args[0], run_name="__main__"))
        return None
    raise TaskError("the magic %%%s (cell %s, line %s) has no equivalent outside IPython" % (name, cell, lineno))


def unknown_cell_magic(name, cell):
    raise TaskError("the cell magic %%%%%s (cell %s) has no equivalent outside IPython" % (name, cell))


class timed:
    def __enter__(self):
        self.t0 = time.time()
        self.c0 = time.process_time()

    def __exit__(self, *exc):
        print("CPU times: total: %.3f s\nWall time: %.3f s" % (time.process_time() - self.c0, time.time() - self.t0))
        return False


def timer_start():
    t = timed()
    t.__enter__()
    return t


def timer_stop(t):
    t.__exit__(None, None, None)


class CapturedIO:
    def __init__(self, stdout, stderr):
        self.stdout, self.stderr = stdout, stderr

    def show(self):
        sys.stdout.write(self.stdout)
        sys.stderr.write(self.stderr)

    __call__ = show


def capture_start():
    saved = (sys.stdout, sys.stderr)
    sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
    return saved


def capture_stop(saved):
    out, err = sys.stdout.getvalue(), sys.stderr.getvalue()
    sys.stdout, sys.stderr = saved
    return CapturedIO(out, err)


def writefile(path, text, append=False):
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "a" if append else "w") as f:
        f.write(text)
    print(("Appending to %s" if append else "Writing %s") % path)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def script(interpreter, body):
    sys.stdout.flush()
    code = subprocess.call([interpreter, "-c", body] if interpreter.startswith("python") else [interpreter, "-c", body])
    if code != 0:
        raise TaskError("the %%%%%s cell exited with %d" % (interpreter, code))


# ---------------------------------------------------------------- errors
def _cell_of(lineno):
    for start, count, cell, first in _STATE.get("line_map", []):
        if start <= lineno < start + count:
            return cell, first + (lineno - start)
    return None


def _excepthook(kind, value, tb):
    import traceback

    frames = traceback.extract_tb(tb)
    where = None
    for fr in reversed(frames):
        if os.path.basename(fr.filename) == "main.py":
            where = _cell_of(fr.lineno)
            if where:
                break
    traceback.print_exception(kind, value, tb)
    if where:
        sys.stderr.write(
            "nb2pipe: task %r failed in notebook %s, cell %d, line %d: %s: %s\n"
            % (_STATE.get("task"), _STATE.get("notebook"), where[0], where[1], kind.__name__, value)
        )
    else:
        sys.stderr.write("nb2pipe: task %r failed: %s: %s\n" % (_STATE.get("task"), kind.__name__, value))
    sys.stderr.flush()
