"""nb2pipe task runtime: shipped beside every generated task (tasks/<task>/main.py).

Loads the values a task receives, saves the values downstream tasks need, runs the
IPython escapes the notebook used, and maps errors back to notebook cells.

Environment (see docs/running.md):
  NB2PIPE_DATA        data store: a directory (local, or a mounted PersistentVolumeClaim)
                      or s3://bucket/prefix (endpoint NB2PIPE_S3_ENDPOINT, credentials
                      from the usual AWS_* variables)
  NB2PIPE_RUN_ID      the run this task belongs to
  NB2PIPE_INPUT_RUNS  JSON {task: run id}: where each producer's values are read from
                      (default: this run); `nb2pipe run --only` uses it
  NB2PIPE_PARAMS      JSON object of parameter overrides
  NB2PIPE_PARAM_<N>   one parameter's value: the text for a str parameter, else JSON
                      (or text)
  NB2PIPE_METRICS_FILE     a `metrics` task writes its metrics here: a JSON object of
                      every real number (int/float, not bool) the task's namespace
                      binds at the end, parameters and `_names` left out
  NB2PIPE_KFP_OUTPUT_FILE  also write them as KFP's executor output (the metadata of
                      the task's `metrics` artifact, which KFP shows)
  NB2PIPE_ERROR_FILE  where to write a JSON report when the task fails (nb2pipe run)
  NB2PIPE_CACHE_KEY   the task's static cache key (nb2pipe computes it; unset: never cached)
  NB2PIPE_CACHE       `on` (default): reuse and record results; `write`: run, then record;
                      `off`: neither
  NB2PIPE_WORKDIR     `store`: run in the run's shared working directory on the data
                      store (every pod gets it); unset: stay in the current directory
                      (`nb2pipe run` without --docker runs tasks in the notebook's folder)

Store layout: <store>/<pipeline>/<run id>/values/<task>/<name>.<format>, its sha256 in
<name>.sha256, and a <name>.format marker written last; the global random states a task hands on (the
notebook seeds them) in <store>/<pipeline>/<run id>/state/<task>/random.json; files written by %%writefile also go to
<store>/<pipeline>/<run id>/files/<path> so tasks in other pods get them, unless the
tasks share the working directory <store>/<pipeline>/<run id>/work/ (NB2PIPE_WORKDIR=store).
Data files the notebook opens travel in the task's folder under files/ (those too big for
the image are staged in <store>/<pipeline>/files/<path>) and are copied into the working
directory when missing there. Local modules are in the task's folder under modules/.
Formats, chosen at run time: pandas objects as Parquet when pyarrow is importable,
numpy arrays as .npy, Spark DataFrames as a Parquet dataset (<name>.spark-parquet.d/, the
files Spark wrote, listed in <name>.spark-parquet), everything else pickled (cloudpickle
when importable). A value the
task received and hands on serialising to the same bytes is stored as <name>.ref, JSON
{"task", "run"}: where the value is.

Cache (docs/running.md, "Caching"): values of cached tasks are stored content-addressed
in <store>/.nb2pipe/objects/sha256/<hex> (and linked into the run); the entry
<store>/.nb2pipe/cache/<key>.json, written last, lists a task's outputs with their
digests. It is reused only when every object it names is there with its size and digest.
"""
import hashlib
import io
import json
import os
import subprocess
import sys
import time

_STATE = {"line_map": []}
_HERE = os.path.dirname(os.path.abspath(__file__))


class TaskError(Exception):
    """A failure nb2pipe explains itself (unknown magic, failing %%bash cell...)."""


def _fail(message):
    sys.stdout.flush()
    sys.stderr.write("nb2pipe: " + message + "\n")
    sys.stderr.flush()
    _report(None, message)
    raise SystemExit(1)


def _report(where, message):
    path = os.environ.get("NB2PIPE_ERROR_FILE")
    if not path:
        return
    doc = {"task": _STATE.get("task"), "message": message}
    if where:
        doc["cell"], doc["line"] = where
    try:
        with open(path, "w") as f:
            json.dump(doc, f)
    except OSError:
        pass


# ---------------------------------------------------------------- data store
def _makedirs(path):
    """os.makedirs for the store: a volume the task's user cannot write to (a fresh claim
    is root's until fsGroup makes it the pod's group's) fails with what to do."""
    try:
        os.makedirs(path, exist_ok=True)
    except PermissionError:
        uid = os.getuid()
        _fail(
            "cannot create %s as uid %d (gid %d): the data volume is not writable by this user: "
            "give the pod fsGroup (all targets but KFP do), make the claim writable for uid %d, "
            "or use an s3:// data store" % (path, uid, os.getgid(), uid)
        )


class _LocalStore:
    def __init__(self, root):
        # Absolute: the task may change directory (NB2PIPE_WORKDIR, %cd).
        self.root = os.path.abspath(root)

    def _path(self, key):
        return os.path.join(self.root, *key.split("/"))

    def put(self, key, data):
        path = self._path(key)
        _makedirs(os.path.dirname(path))
        # Containers of two runs can share a pid (1): the name must not clash.
        tmp = path + ".tmp-%d-%s" % (os.getpid(), os.urandom(4).hex())
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def has(self, key, size):
        try:
            return os.path.getsize(self._path(key)) == size
        except OSError:
            return False

    def link(self, src, dst):
        """dst names the same bytes as src: a hard link where the file system has them."""
        path = self._path(dst)
        _makedirs(os.path.dirname(path))
        tmp = path + ".tmp-%d-%s" % (os.getpid(), os.urandom(4).hex())
        try:
            os.link(self._path(src), tmp)
        except OSError:
            with open(self._path(src), "rb") as f:
                data = f.read()
            with open(tmp, "wb") as f:
                f.write(data)
        os.replace(tmp, path)

    def delete(self, key):
        try:
            os.remove(self._path(key))
        except OSError:
            pass

    def get(self, key):
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def list(self, prefix):
        base = self._path(prefix)
        out = []
        for d, _, files in os.walk(base):
            for name in files:
                if ".tmp-" not in name:
                    rel = os.path.relpath(os.path.join(d, name), base)
                    out.append(rel.replace(os.sep, "/"))
        return sorted(out)


class _S3Store:
    def __init__(self, url):
        try:
            import boto3
        except ImportError:
            _fail("NB2PIPE_DATA is %s but boto3 is not installed in this task's environment" % url)
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
        except Exception as e:  # botocore's ClientError; its NoSuchKey subclass
            code = getattr(e, "response", {}).get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey"):
                return None
            raise

    def has(self, key, size):
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"] == size
        except Exception:
            return False

    def link(self, src, dst):
        self.client.copy_object(Bucket=self.bucket, Key=self._key(dst), CopySource={"Bucket": self.bucket, "Key": self._key(src)})

    def delete(self, key):
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception:
            pass

    def list(self, prefix):
        base = self._key(prefix).rstrip("/") + "/"
        out = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base)
        for page in pages:
            for obj in page.get("Contents", []):
                out.append(obj["Key"][len(base):])
        return sorted(out)


def _store_url():
    if "store_url" not in _STATE:
        _STATE["store_url"] = os.environ.get("NB2PIPE_DATA") or os.path.join(os.getcwd(), "nb2pipe-data")
    return _STATE["store_url"]


def store():
    if "store" not in _STATE:
        url = _store_url()
        _STATE["store"] = _S3Store(url) if url.startswith("s3://") else _LocalStore(url)
    return _STATE["store"]


def run_id():
    return os.environ.get("NB2PIPE_RUN_ID") or "local"


def _safe(s):
    # Airflow's run ids carry ':' and '+'; keep keys portable across filesystems and S3.
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in s)


def _run_prefix(run):
    return "%s/%s" % (_STATE["pipeline"], _safe(run))


def _input_runs():
    raw = os.environ.get("NB2PIPE_INPUT_RUNS")
    if not raw:
        return {}
    try:
        runs = json.loads(raw)
    except ValueError as e:
        _fail("NB2PIPE_INPUT_RUNS is not JSON: %s" % e)
    return runs if isinstance(runs, dict) else {}


# ---------------------------------------------------------------- formats
def _dumps(value, name=None):
    """(format, bytes) for a value."""
    mod = type(value).__module__ or ""
    if name is not None and _is_spark_frame(value):
        return "spark-parquet", _spark_parquet(value, name)
    if mod.startswith("pandas") or type(value).__name__ == "SparkPandasFrame":
        got = _parquet(value)
        if got:
            return got
    if type(value).__name__ == "ndarray" and mod == "numpy" and not value.dtype.hasobject:
        import numpy as np

        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return "npy", buf.getvalue()
    try:
        import cloudpickle as pickler
    except ImportError:
        import pickle as pickler
    return "pkl", pickler.dumps(value)


def _parquet(value):
    try:
        import pyarrow  # noqa: F401
        import pandas as pd
    except ImportError:
        return None
    if isinstance(value, pd.Series):
        if not isinstance(value.name, str):
            return None
        frame, fmt = value.to_frame(), "parquet-series"
    elif isinstance(value, pd.DataFrame):
        frame, fmt = value, "parquet"
    else:
        return None
    if not all(isinstance(c, str) for c in frame.columns) or frame.columns.has_duplicates:
        return None
    buf = io.BytesIO()
    try:
        frame.to_parquet(buf)
    except Exception:
        return None  # mixed-type object columns and the like: pickle keeps them as they are
    return fmt, buf.getvalue()


def _loads(fmt, data):
    if fmt == "spark-parquet":
        return _spark_load(json.loads(data.decode()))
    if fmt in ("parquet", "parquet-series"):
        import pandas as pd

        frame = pd.read_parquet(io.BytesIO(data))
        return frame.iloc[:, 0] if fmt == "parquet-series" else frame
    if fmt == "npy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    import pickle

    return pickle.loads(data)


# ---------------------------------------------------------------- Spark DataFrames
def _is_spark_frame(value):
    # pyspark.sql.dataframe, .classic.dataframe (4.x) and .connect.dataframe.
    t = type(value)
    return t.__name__ == "DataFrame" and (t.__module__ or "").startswith("pyspark.sql.")


def _spark_local(value):
    try:
        return value.sparkSession.sparkContext.master.startswith("local")
    except Exception:  # Spark Connect has no SparkContext: its server writes the files
        return False


def _spark_parquet(value, name):
    """The manifest of a Spark DataFrame written as Parquet by Spark itself. A directory
    store (a PVC that the driver and the executors mount) gets the files directly; an S3
    store gets them through the store's own put from a local directory in local mode,
    and from Spark's s3a:// writer in cluster mode (the image needs hadoop-aws then)."""
    s = store()
    key = "%s/values/%s/%s.spark-parquet.d" % (_run_prefix(run_id()), _STATE["task"], name)
    if isinstance(s, _LocalStore):
        path = s._path(key)
        _makedirs(os.path.dirname(path))
        value.write.mode("overwrite").parquet("file://" + path)
        files = os.listdir(path)
    elif _spark_local(value):
        import shutil
        import tempfile

        tmp = tempfile.mkdtemp(prefix="nb2pipe-spark-")
        try:
            path = os.path.join(tmp, "v")
            value.write.parquet("file://" + path)
            files = [f for f in os.listdir(path) if f.endswith(".parquet")]
            for f in files:
                with open(os.path.join(path, f), "rb") as fh:
                    s.put(key + "/" + f, fh.read())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        value.write.mode("overwrite").parquet("s3a://%s/%s" % (s.bucket, s._key(key)))
        files = s.list(key)
    doc = {"dir": key, "files": sorted(f for f in files if f.endswith(".parquet"))}
    return json.dumps(doc, sort_keys=True).encode()


def _spark_load(doc):
    """A Spark task reads the dataset with Spark; any other task gets a pandas DataFrame
    (with pyarrow, no JVM) that also answers toPandas(), as code written against the
    notebook's Spark DataFrame calls it."""
    s = store()
    if _STATE.get("spark"):
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.getOrCreate()
        if isinstance(s, _LocalStore):
            return spark.read.parquet("file://" + s._path(doc["dir"]))
        if not spark.sparkContext.master.startswith("local"):
            return spark.read.parquet("s3a://%s/%s" % (s.bucket, s._key(doc["dir"])))
        import tempfile

        # Kept for the life of the task: Spark reads lazily.
        path = tempfile.mkdtemp(prefix="nb2pipe-spark-")
        for f in doc["files"]:
            _write_new(os.path.join(path, f), s.get(doc["dir"] + "/" + f))
        return spark.read.parquet("file://" + path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(io.BytesIO(s.get(doc["dir"] + "/" + f))) for f in doc["files"]]
    table = pa.concat_tables(tables) if tables else pa.table({})
    return _spark_pandas_class()(table.to_pandas())


def _spark_pandas_class():
    cls = globals().get("SparkPandasFrame")
    if cls is None:
        import pandas as pd

        class SparkPandasFrame(pd.DataFrame):
            """A Spark DataFrame as a task without Spark receives it."""

            def toPandas(self):
                return pd.DataFrame(self)

        SparkPandasFrame.__qualname__ = "SparkPandasFrame"
        globals()["SparkPandasFrame"] = cls = SparkPandasFrame
    return cls


# ---------------------------------------------------------------- task life cycle
def start(pipeline, task, notebook, inputs, outputs, consumers, line_map, staged=(), spark=False, random_from=None):
    _STATE.update(
        pipeline=pipeline, task=task, notebook=notebook, inputs=inputs, outputs=outputs, consumers=consumers, line_map=line_map,
        spark=spark, random_from=random_from,
    )
    sys.excepthook = _excepthook
    # Before any chdir: tracebacks name main.py as it was started.
    _STATE["main"] = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else None
    _enter_workdir(staged)
    # A notebook's kernel imports from its working directory; the task's own copies of
    # the project's modules come next.
    modules = os.path.join(_HERE, "modules")
    if os.path.isdir(modules) and modules not in sys.path:
        sys.path.insert(0, modules)
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (modules, os.environ.get("PYTHONPATH")) if p)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    # No display in a task: matplotlib draws off-screen (read when matplotlib is imported).
    os.environ.setdefault("MPLBACKEND", "Agg")
    import builtins

    if not hasattr(builtins, "display"):
        builtins.display = display
    _fetch_files()


def parameters(defaults):
    """Defaults from the notebook, overridden by NB2PIPE_PARAMS (JSON object) and
    NB2PIPE_PARAM_<NAME> (JSON, or text)."""
    values = dict(defaults)
    _STATE["parameters"] = set(defaults)
    raw = os.environ.get("NB2PIPE_PARAMS")
    if raw:
        try:
            given = json.loads(raw)
        except ValueError as e:
            _fail("NB2PIPE_PARAMS is not JSON: %s" % e)
        if not isinstance(given, dict):
            _fail("NB2PIPE_PARAMS must be a JSON object, got %s" % type(given).__name__)
        for k, v in given.items():
            if k in values:
                values[k] = _coerce(k, v, defaults[k])
    for k in defaults:
        env = os.environ.get("NB2PIPE_PARAM_" + k)
        if env is not None:
            values[k] = _decode(k, env, defaults[k])
    _STATE["param_values"] = values
    return values


def _decode(name, text, default):
    """One NB2PIPE_PARAM_<NAME> by the parameter's type (its default's): a str
    parameter is the text itself, byte for byte ("1.10", "null", "1e3" stay text);
    any other is parsed as JSON, else taken as text, then checked."""
    if isinstance(default, str):
        return text
    try:
        v = json.loads(text)
    except ValueError:
        v = text
    return _coerce(name, v, default)


def _coerce(name, value, default):
    """Keeps the notebook's type: Airflow and Argo hand parameters over as text."""
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
            if kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return kind(value)
        except ValueError:
            _fail("parameter %r must be %s, got %r" % (name, kind.__name__, value))
    if kind is str and not isinstance(value, str):
        return json.dumps(value)
    return value


def load_inputs():
    """The values the task receives; first, when the cache holds this task's outputs
    for its key, those are linked into the run and the task ends here."""
    values = {}
    s = store()
    runs = _input_runs()
    got = []
    for name, producer in sorted(_STATE["inputs"].items()):
        run = runs.get(producer, run_id())
        key = "%s/values/%s/%s" % (_run_prefix(run), producer, name)
        meta = s.get(key + ".format")
        if meta is None:
            _fail(
                "input %r of task %r is missing: task %r should have produced it in run %s (data store %s); run %r first"
                % (name, _STATE["task"], producer, run, _store_url(), producer)
            )
        fmt, _, origin = _follow(s, name, fmt=meta.decode(), origin=(producer, run), read=False)
        side = s.get("%s/values/%s/%s.sha256" % (_run_prefix(origin[1]), origin[0], name))
        got.append((name, producer, run, fmt, origin, side))
    loaded = _STATE.setdefault("loaded", {})
    # The digests beside the values decide a cache hit before any value is read.
    if all(g[5] for g in got):
        for name, _, _, fmt, origin, side in got:
            loaded[name] = (origin, fmt, bytes.fromhex(side.decode().strip()))
        _cache_check()
    before = dict(loaded)
    datas = {}
    for name, _, _, fmt, origin, _ in got:
        datas[name] = s.get("%s/values/%s/%s.%s" % (_run_prefix(origin[1]), origin[0], name, fmt))
        loaded[name] = (origin, fmt, hashlib.sha256(datas[name] or b"").digest())
    if loaded != before:
        _cache_check()
    for name, producer, run, fmt, _, _ in got:
        data = datas[name]
        try:
            values[name] = _loads(fmt, data)
        except Exception as e:
            _fail("cannot load %r (produced by task %r in run %s, format %s): %s: %s" % (name, producer, run, fmt, type(e).__name__, e))
    return values


def _follow(s, name, fmt, origin, read=True):
    """(format, bytes, (task, run)) of a value: a task that handed on a value it received
    unchanged stored a reference to where the value is. `read=False`: bytes are None."""
    for _ in range(64):
        if fmt != "ref":
            data = s.get("%s/values/%s/%s.%s" % (_run_prefix(origin[1]), origin[0], name, fmt)) if read else None
            return fmt, data, origin
        key = "%s/values/%s/%s" % (_run_prefix(origin[1]), origin[0], name)
        ref = json.loads(s.get(key + ".ref").decode())
        origin = (ref["task"], ref["run"])
        meta = s.get("%s/values/%s/%s.format" % (_run_prefix(origin[1]), origin[0], name))
        if meta is None:
            _fail("input %r refers to task %r of run %s, which did not store it" % (name, origin[0], origin[1]))
        fmt = meta.decode()
    _fail("input %r: too many references" % name)


def _unchanged(name, fmt, data):
    """Where the value came from, when the task received it and it serialises to the
    same bytes: the task may have changed it (docs/running.md) but did not."""
    seen = _STATE.get("loaded", {}).get(name)
    if seen and seen[1] == fmt and seen[2] == hashlib.sha256(data).digest():
        return seen[0]
    return None


def finish(namespace):
    sys.stdout.flush()
    s = store()
    task = _STATE["task"]
    ckey = _STATE.get("cache_key") if _cache_mode() != "off" else None
    entry = {"outputs": {}}
    for name in _STATE["outputs"]:
        if name not in namespace:
            _fail("task %r should produce %r for %s, but it was not bound when the task ended" % (task, name, _consumers(name)))
        value = namespace[name]
        try:
            fmt, data = _dumps(value, name)
        except Exception as e:
            _fail(
                "cannot pass %r (a %s) from task %r to %s: %s: %s. Values handed between tasks must be serialisable; "
                "open files, generators and connections are not: create it in the task that uses it"
                % (name, _type_name(value), task, _consumers(name), type(e).__name__, e)
            )
        path = "%s/values/%s/%s" % (_run_prefix(run_id()), task, name)
        if ckey:
            entry["outputs"][name] = _put_object(s, data, fmt)
        origin = _unchanged(name, fmt, data)
        if origin:
            s.put(path + ".ref", json.dumps({"task": origin[0], "run": origin[1]}).encode())
            fmt = "ref"
        elif ckey:
            s.link(_object_key(entry["outputs"][name]["sha256"]), path + "." + fmt)
        else:
            s.put(path + "." + fmt, data)
        if fmt != "ref" and isinstance(data, bytes):
            s.put(path + ".sha256", hashlib.sha256(data).hexdigest().encode())
        s.put(path + ".format", fmt.encode())
    entry["metrics"] = _write_metrics(namespace)
    if ckey:
        _cache_record(s, ckey, entry)
    _sync_up()


# ---------------------------------------------------------------- cache
CACHE_FORMAT = 1


def _cache_mode():
    mode = os.environ.get("NB2PIPE_CACHE") or "on"
    return mode if mode in ("on", "write", "off") else "on"


def _object_key(hexdigest):
    return ".nb2pipe/objects/sha256/" + hexdigest


def _entry_key(key):
    return ".nb2pipe/cache/%s.json" % key


def _put_object(s, data, fmt=None):
    """Stores `data` content-addressed (once); its record in a cache entry."""
    digest = hashlib.sha256(data).hexdigest()
    if not s.has(_object_key(digest), len(data)):
        s.put(_object_key(digest), data)
    rec = {"sha256": digest, "size": len(data)}
    if fmt is not None:
        rec["format"] = fmt
    return rec


def _field(h, b):
    h.update(len(b).to_bytes(8, "little"))
    h.update(b)


def _cache_check():
    """Finishes the key (static key, parameter values, digests of the values received and
    of the random states restored) and, in mode `on`, serves the task from the cache."""
    static = os.environ.get("NB2PIPE_CACHE_KEY")
    mode = _cache_mode()
    if not static or mode == "off" or not _STATE.get("pipeline"):
        return
    h = hashlib.sha256()
    _field(h, b"nb2pipe-task-key")
    _field(h, str(CACHE_FORMAT).encode())
    _field(h, static.encode())
    for k, v in sorted((_STATE.get("param_values") or {}).items()):
        _field(h, b"param:" + k.encode())
        _field(h, json.dumps(v, sort_keys=True, separators=(",", ":"), default=repr).encode())
    for name, (_, _, digest) in sorted(_STATE.get("loaded", {}).items()):
        _field(h, b"input:" + name.encode())
        _field(h, digest)
    producer = _STATE.get("random_from")
    if producer:
        run = _input_runs().get(producer, run_id())
        _field(h, b"random")
        _field(h, hashlib.sha256(store().get(_random_key(producer, run)) or b"").digest())
    key = h.hexdigest()
    _STATE["cache_key"] = key
    if mode == "on" and _serve(key):
        sys.stdout.flush()
        sys.stderr.write("nb2pipe: task %r served from the cache (key %s): its code did not run\n" % (_STATE["task"], key[:16]))
        sys.stderr.flush()
        _sync_up()
        raise SystemExit(0)


def _cache_record(s, key, entry):
    entry.update(format=CACHE_FORMAT, task=_STATE["task"], pipeline=_STATE["pipeline"], created=int(time.time()))
    saved = _STATE.get("random_saved")
    if saved is not None:
        entry["random"] = _put_object(s, saved)
    files = {}
    for rel in sorted(_STATE.get("written", ())):
        try:
            with open(rel, "rb") as f:
                files[rel] = _put_object(s, f.read())
        except OSError:
            pass
    entry["files"] = files
    # Written last, in one piece: a reader sees the whole entry or none.
    s.put(_entry_key(key), json.dumps(entry, sort_keys=True).encode())


def _verified(s, rec):
    """The object's bytes when they have its size and digest; a damaged one is removed
    so the task writes it again."""
    okey = _object_key(rec["sha256"])
    data = s.get(okey)
    if data is not None and len(data) == rec["size"] and hashlib.sha256(data).hexdigest() == rec["sha256"]:
        return data
    if data is not None:
        s.delete(okey)
    return None


def _serve(key):
    """Links the entry's outputs into this run; False (nothing linked) when there is no
    complete, intact entry for the key."""
    s = store()
    raw = s.get(_entry_key(key))
    if raw is None:
        return False
    try:
        entry = json.loads(raw.decode())
        outputs = entry["outputs"]
        if entry.get("format") != CACHE_FORMAT or sorted(outputs) != sorted(_STATE["outputs"]):
            raise ValueError("it does not list this task's outputs")
        if os.environ.get("NB2PIPE_METRICS_FILE") and entry.get("metrics") is None:
            raise ValueError("it has no metrics")
        recs = list(outputs.values()) + list(entry.get("files", {}).values())
        if entry.get("random"):
            recs.append(entry["random"])
        blobs = {}
        for rec in recs:
            data = _verified(s, rec)
            if data is None:
                raise ValueError("object %s is missing or damaged" % rec["sha256"][:16])
            blobs[rec["sha256"]] = data
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        sys.stderr.write("nb2pipe: cache entry %s not used: %s\n" % (key[:16], e))
        return False
    task = _STATE["task"]
    for name, rec in sorted(outputs.items()):
        path = "%s/values/%s/%s" % (_run_prefix(run_id()), task, name)
        s.link(_object_key(rec["sha256"]), path + "." + rec["format"])
        s.put(path + ".sha256", rec["sha256"].encode())
        s.put(path + ".format", rec["format"].encode())
    if entry.get("random"):
        s.put(_random_key(task, run_id()), blobs[entry["random"]["sha256"]])
    for rel, rec in sorted(entry.get("files", {}).items()):
        if _inside(rel):
            _write_new(rel, blobs[rec["sha256"]])
            if not _shared_workdir():
                s.put("%s/files/%s" % (_run_prefix(run_id()), rel), blobs[rec["sha256"]])
    if entry.get("metrics") is not None:
        _write_metrics_doc(entry["metrics"])
    return True


def prune(older_than=None, max_bytes=None, now=None):
    """`nb2pipe cache prune`: removes cache entries created more than `older_than`
    seconds ago, then the oldest ones until the objects the rest name fit in `max_bytes`,
    then every object no entry names. A run's values stay readable: they are its own
    links or copies. Returns (entries removed, objects removed, bytes freed, entries
    kept, bytes kept)."""
    s = store()
    now = time.time() if now is None else now
    entries = []
    for rel in s.list(".nb2pipe/cache"):
        if not rel.endswith(".json") or "/" in rel:
            continue
        try:
            raw = s.get(".nb2pipe/cache/" + rel)
            e = json.loads(raw.decode())
            recs = list(e["outputs"].values()) + list(e.get("files", {}).values())
            if e.get("random"):
                recs.append(e["random"])
            objs = {r["sha256"]: int(r["size"]) for r in recs}
            objs["entry:" + rel] = len(raw)  # the entry's own size counts
            created = float(e.get("created", 0))
        except Exception:
            objs, created = None, 0.0  # damaged: never reused, so removed
        entries.append((created, rel, objs))
    kept, used, removed = set(), {}, 0
    for created, rel, objs in sorted(entries, key=lambda x: (-x[0], x[1])):
        extra = sum(n for d, n in (objs or {}).items() if d not in used)
        fresh = older_than is None or now - created <= older_than
        fits = max_bytes is None or sum(used.values()) + extra <= max_bytes
        if objs is not None and fresh and fits:
            used.update(objs)
            kept.add(rel)
        else:
            s.delete(".nb2pipe/cache/" + rel)
            removed += 1
    gone, freed = 0, 0
    for rel in s.list(".nb2pipe/objects/sha256"):
        if rel not in used:
            data = s.get(".nb2pipe/objects/sha256/" + rel)
            freed += len(data or b"")
            s.delete(".nb2pipe/objects/sha256/" + rel)
            gone += 1
    return removed, gone, freed, len(kept), sum(used.values())


# ---------------------------------------------------------------- global random state
def _random_key(task, run):
    return "%s/state/%s/random.json" % (_run_prefix(run), task)


def restore_random_state(producer):
    """Python's `random` and NumPy's global generator as task `producer` left them, so
    this task draws the numbers the notebook's one kernel drew next. NumPy's state is
    kept as plain numbers: a task without NumPy hands it on unchanged."""
    run = _input_runs().get(producer, run_id())
    data = store().get(_random_key(producer, run))
    if data is None:
        _fail(
            "the random state of task %r is missing: task %r should have saved it in run %s (data store %s); run %r first"
            % (producer, producer, run, _store_url(), producer)
        )
    state = json.loads(data.decode())
    import random

    version, internal, gauss = state["random"]
    random.setstate((version, tuple(internal), gauss))
    legacy = state.get("numpy")
    if legacy is None:
        return
    try:
        import numpy as np
    except ImportError:
        _STATE["numpy_random"] = legacy
        return
    kind, keys, pos, has_gauss, cached = legacy
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def save_random_state():
    """The global generators' states for the next task (restore_random_state)."""
    import random

    version, internal, gauss = random.getstate()
    state = {"random": [version, list(internal), gauss]}
    np = sys.modules.get("numpy")
    if np is not None:
        kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
        state["numpy"] = [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]
    elif "numpy_random" in _STATE:
        state["numpy"] = _STATE["numpy_random"]
    data = json.dumps(state, separators=(",", ":")).encode()
    _STATE["random_saved"] = data
    store().put(_random_key(_STATE["task"], run_id()), data)


def _write_metrics(namespace):
    path = os.environ.get("NB2PIPE_METRICS_FILE")
    if not path:
        return
    import math
    import numbers

    params = _STATE.get("parameters") or ()
    metrics = {}
    for k, v in sorted(namespace.items()):
        if k.startswith("_") or k in params or isinstance(v, bool):
            continue
        if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral):
            v = float(v)
            if math.isfinite(v):
                metrics[k] = v
        elif isinstance(v, numbers.Integral):
            metrics[k] = int(v)
    _write_metrics_doc(metrics)
    return metrics


def _write_metrics_doc(metrics):
    path = os.environ.get("NB2PIPE_METRICS_FILE")
    if not path:
        return
    docs = [(path, metrics)]
    kfp = os.environ.get("NB2PIPE_KFP_OUTPUT_FILE")
    if kfp:
        docs.append((kfp, {"artifacts": {"metrics": {"artifacts": [{"metadata": metrics}]}}}))
    for p, doc in docs:
        d = os.path.dirname(p)
        if d:
            os.makedirs(d, exist_ok=True)
        with open(p, "w") as f:
            json.dump(doc, f, sort_keys=True)


def _consumers(name):
    tasks = _STATE.get("consumers", {}).get(name) or []
    if not tasks:
        return "the tasks downstream"
    return ("task %r" % tasks[0]) if len(tasks) == 1 else "tasks " + ", ".join(repr(t) for t in tasks)


def _type_name(value):
    t = type(value)
    return t.__name__ if t.__module__ == "builtins" else "%s.%s" % (t.__module__, t.__name__)


# ---------------------------------------------------------------- working directory
def _shared_workdir():
    return os.environ.get("NB2PIPE_WORKDIR") == "store"


def _enter_workdir(staged):
    """With NB2PIPE_WORKDIR=store, every task of a run works in one directory on the data
    store, as the notebook's cells all ran in one folder: the volume's
    <store>/<pipeline>/<run>/work/ itself, or for S3 a local copy of that prefix, synced
    down now and up by finish(). The task's data files are put there when missing (an
    upstream task's newer copy is kept). Run in its own folder (the image's /app), a
    task puts them there; elsewhere (nb2pipe run in the notebook's folder) it has them."""
    here = os.path.abspath(os.getcwd()) == _HERE
    if _shared_workdir():
        s = store()
        if isinstance(s, _S3Store):
            import tempfile

            work = tempfile.mkdtemp(prefix="nb2pipe-work-")
            prefix = _work_prefix()
            for rel in s.list(prefix):
                if _inside(rel):
                    _write_new(os.path.join(work, rel), s.get(prefix + "/" + rel))
        else:
            work = s._path(_work_prefix())
            _makedirs(work)
        os.chdir(work)
    elif not here:
        return
    _seed(staged)
    if _shared_workdir() and isinstance(store(), _S3Store):
        _STATE["work_seen"] = _snapshot()


def _work_prefix():
    return _run_prefix(run_id()) + "/work"


def _inside(rel):
    return rel and not rel.startswith("/") and ".." not in rel.split("/") and ".tmp-" not in rel


def _write_new(path, data):
    if data is None:
        return
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _seed(staged):
    """The task's data files into the current directory, where missing."""
    files = os.path.join(_HERE, "files")
    for d, _, names in os.walk(files):
        for name in names:
            src = os.path.join(d, name)
            rel = os.path.relpath(src, files)
            if not os.path.exists(rel):
                with open(src, "rb") as f:
                    _write_new(rel, f.read())
    for rel in staged:
        if os.path.exists(rel):
            continue
        key = "%s/files/%s" % (_STATE["pipeline"], rel)
        data = store().get(key)
        if data is None:
            _fail(
                "task %r reads %s, which is too big for its image: copy it to %s/%s in the data store first"
                % (_STATE["task"], rel, _store_url().rstrip("/"), key)
            )
        _write_new(rel, data)


def _snapshot():
    """{relative path: (size, mtime)} of the working directory."""
    out = {}
    for d, _, names in os.walk("."):
        for name in names:
            p = os.path.join(d, name)
            try:
                st = os.stat(p)
            except OSError:
                continue
            out[os.path.relpath(p).replace(os.sep, "/")] = (st.st_size, st.st_mtime_ns)
    return out


def _sync_up():
    """S3: files the task created or changed in the working directory go to the run's
    work/ prefix (deleted files are not removed there)."""
    seen = _STATE.get("work_seen")
    if seen is None:
        return
    s, prefix = store(), _work_prefix()
    for rel, stamp in sorted(_snapshot().items()):
        if seen.get(rel) != stamp and _inside(rel):
            with open(rel, "rb") as f:
                s.put(prefix + "/" + rel, f.read())


def _fetch_files():
    """Files an upstream task wrote with %%writefile, in this pod's working directory
    (a shared working directory has them already)."""
    if not _STATE.get("pipeline") or _shared_workdir():
        return
    s = store()
    prefix = _run_prefix(run_id()) + "/files"
    for rel in s.list(prefix):
        if rel.startswith("/") or ".." in rel.split("/") or os.path.exists(rel):
            continue
        data = s.get(prefix + "/" + rel)
        if data is None:
            continue
        d = os.path.dirname(rel)
        if d:
            os.makedirs(d, exist_ok=True)
        with open(rel, "wb") as f:
            f.write(data)


# ---------------------------------------------------------------- IPython equivalents
def display(*objs, **kwargs):
    """IPython's display() outside IPython: the text/plain form, as the notebook shows it."""
    try:
        from IPython.lib.pretty import pretty
    except ImportError:
        pretty = repr
    for o in objs:
        if kwargs.get("raw"):
            print(o)
        else:
            print(pretty(o))


def _expand(cmd, g, l):
    """IPython's interpolation: {expr} and $name from the caller's namespace."""
    ns = dict(g or {})
    ns.update(l or {})
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
        elif c == "{" and i + 1 < len(cmd) and cmd[i + 1] == "{":
            out.append("{")
            i += 2
        elif c == "}" and i + 1 < len(cmd) and cmd[i + 1] == "}":
            out.append("}")
            i += 2
        elif c == "{":
            j = cmd.find("}", i)
            if j < 0:
                out.append(cmd[i:])
                break
            try:
                out.append(str(eval(cmd[i + 1:j], ns)))
            except Exception:
                out.append(cmd[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def sh(cmd, g=None, l=None):
    """`!cmd`: runs in a shell; like IPython, a failure only sets `_exit_code`."""
    sys.stdout.flush()
    sys.stderr.flush()
    code = subprocess.call(_expand(cmd, g, l), shell=True)
    if g is not None:
        g["_exit_code"] = code
    return None


class SList(list):
    """IPython's list of output lines (`x = !cmd`)."""

    @property
    def s(self):
        return " ".join(self)

    @property
    def n(self):
        return "\n".join(self)

    @property
    def l(self):  # noqa: E743
        return list(self)

    def grep(self, pattern, prune=False):
        import re

        rx = re.compile(pattern)
        return SList([x for x in self if bool(rx.search(x)) != prune])


def sh_capture(cmd, g=None, l=None):
    """`x = !cmd`: stdout and stderr together, as IPython's getoutput returns them."""
    sys.stdout.flush()
    out = subprocess.run(_expand(cmd, g, l), shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
    return SList(out.decode(errors="replace").splitlines())


_DIRS = []


def magic(line, g, l, cell, lineno):
    """A line magic used as an expression, or one the runtime implements."""
    name, _, rest = line.partition(" ")
    rest = rest.strip()
    if name in ("time", "timeit", "prun"):
        t = timer_start()
        try:
            return eval(_strip_options(rest), g, l) if rest else None
        finally:
            timer_stop(t)
    rest = _expand(rest, g, l)
    if name in ("pip", "conda", "mamba", "micromamba", "uv"):
        return None  # installed in the image (requirements.txt)
    if name == "env":
        if not rest:
            return dict(os.environ)
        if "=" in rest or " " in rest:
            k, v = (rest.split("=", 1) if "=" in rest else rest.split(" ", 1))
            os.environ[k.strip()] = v.strip()
            return None
        return os.environ.get(rest)
    if name == "set_env":
        k, _, v = rest.partition(" ")
        os.environ[k] = v.strip()
        return None
    if name == "cd":
        os.chdir(os.path.expanduser(rest or "~"))
        return None
    if name == "pwd":
        return os.getcwd()
    if name == "pushd":
        _DIRS.append(os.getcwd())
        os.chdir(os.path.expanduser(rest or "~"))
        return None
    if name == "popd":
        if _DIRS:
            os.chdir(_DIRS.pop())
        return None
    if name in ("dirs", "dhist"):
        return list(_DIRS)
    if name in ("ls", "mkdir", "rm", "cp", "mv", "cat", "rmdir", "less", "more", "man", "clear", "ldir", "lf", "lk", "ll", "lx"):
        cmd = {"ll": "ls -F -l", "lf": "ls -F -l", "lk": "ls -F -l", "lx": "ls -F -l", "ldir": "ls -F -d", "less": "cat", "more": "cat", "clear": "true"}
        return sh(cmd.get(name, name) + " " + rest, g, l)
    if name in ("system", "sx"):
        return sh_capture(rest, g, l)
    if name == "sc":
        return sh_capture(rest.split("=", 1)[-1], g, l)
    if name == "run":
        import runpy
        import shlex

        args = shlex.split(rest)
        args = [a for a in args if not a.startswith("-")]
        if not args:
            raise TaskError("%%run needs a file (%s, line %s)" % (_cell_name(cell), lineno))
        saved = sys.argv
        sys.argv = args
        try:
            g.update(runpy.run_path(args[0], run_name="__main__"))
        finally:
            sys.argv = saved
        return None
    if name == "xdel":
        for v in rest.split():
            if not v.startswith("-"):
                g.pop(v, None)
        return None
    if name in _DROPPED:
        return None
    raise TaskError(
        "the magic %%%s (%s, line %s) has no equivalent outside IPython; "
        "replace it with plain Python or tag the cell `skip`" % (name, _cell_name(cell), lineno)
    )


# Line magics that have no effect in a task (the same list as nb2pipe's analysis).
_DROPPED = frozenset(
    "matplotlib load_ext unload_ext reload_ext autoreload aimport config who whos who_ls history lsmagic magic "
    "precision pprint xmode colors autocall automagic doctest_mode pdb debug tb reset reset_selective notebook "
    "qtconsole connect_info page pinfo pinfo2 psearch quickref config_inlinebackend load "
    "alias alias_magic unalias autoawait code_wrap ed edit gui hist killbgscripts loadpy logoff logon logstart "
    "logstate logstop macro pastebin pdef pdoc pfile psource pycat pylab recall rehashx rep rerun save "
    "watermark tensorboard".split()
)


def _strip_options(s):
    words = s.split(" ")
    while words and words[0].startswith("-"):
        flag = words.pop(0)
        if flag in ("-n", "-r", "-o", "-p", "-s", "-T", "-D", "-l") and words:
            words.pop(0)
        while words and words[0] == "":
            words.pop(0)
    return " ".join(words)


def unknown_cell_magic(name, cell):
    raise TaskError(
        "the cell magic %%%%%s (%s) has no equivalent outside IPython; "
        "replace it with plain Python or tag the cell `skip`" % (name, _cell_name(cell))
    )


def _fmt_time(s):
    """IPython's _format_time: three significant digits in the largest fitting unit."""
    import math

    if s >= 60:
        minutes, sec = divmod(s, 60)
        return "%dmin %.*g s" % (minutes, 3, sec)
    units, scale = ["s", "ms", "\u00b5s", "ns"], [1, 1e3, 1e6, 1e9]
    order = min(-int(math.floor(math.log10(s)) // 3), 3) if s > 0 else 3
    return "%.*g %s" % (3, s * scale[order], units[order])


class timed:
    """`%time` / `%%time`: runs once and prints IPython's timing lines."""

    def __enter__(self):
        self.wall = time.perf_counter()
        self.cpu = os.times()
        return self

    def __exit__(self, *exc):
        end = os.times()
        user, system = end.user - self.cpu.user, end.system - self.cpu.system
        print("CPU times: user %s, sys: %s, total: %s" % (_fmt_time(user), _fmt_time(system), _fmt_time(user + system)))
        print("Wall time: %s" % _fmt_time(time.perf_counter() - self.wall))
        return False


def timer_start():
    return timed().__enter__()


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
    """`%%writefile`: writes the file; outside a shared working directory, also keeps a
    copy in the run's store so tasks in other pods (which do not share this file system)
    find it."""
    path = os.path.expanduser(path)
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "a" if append else "w") as f:
        f.write(text)
    print(("Appending to %s" if append else "Writing %s") % path)
    rel = os.path.relpath(path)
    if not rel.startswith("..") and not os.path.isabs(rel):
        _STATE.setdefault("written", set()).add(rel.replace(os.sep, "/"))
    if _STATE.get("pipeline") and not _shared_workdir() and not rel.startswith("..") and not os.path.isabs(rel):
        with open(path, "rb") as f:
            store().put("%s/files/%s" % (_run_prefix(run_id()), rel.replace(os.sep, "/")), f.read())


def script(interpreter, body):
    """`%%bash` / `%%script X`: the body on the interpreter's stdin, as IPython does; a
    non-zero exit fails the task, as it fails the cell."""
    sys.stdout.flush()
    sys.stderr.flush()
    code = subprocess.run([interpreter], input=body.encode()).returncode
    if code != 0:
        raise TaskError("the %%%%%s cell exited with status %d" % (interpreter, code))


# ---------------------------------------------------------------- errors
def _cell_of(lineno):
    for first, count, cell, cell_line, *_ in _STATE.get("line_map", []):
        if first <= lineno < first + count:
            return cell, cell_line + (lineno - first)
    return None


def _cell_name(cell):
    """The cell as diagnostics name it: cell N (`first line`), N counted from 1."""
    for entry in _STATE.get("line_map", []):
        if entry[2] == cell and len(entry) > 4 and entry[4]:
            return entry[4]
    return "cell %d" % (cell + 1)


def _excepthook(kind, value, tb):
    import traceback

    where = None
    main = _STATE.get("main")
    for fr in reversed(traceback.extract_tb(tb)):
        if main and (fr.filename == sys.argv[0] or os.path.abspath(fr.filename) == main):
            where = _cell_of(fr.lineno)
            if where:
                break
    sys.stdout.flush()
    traceback.print_exception(kind, value, tb)
    error = "%s: %s" % (kind.__name__, value)
    if where:
        sys.stderr.write(
            "nb2pipe: task %r failed in notebook %s, %s, line %d: %s\n" % (_STATE.get("task"), _STATE.get("notebook"), _cell_name(where[0]), where[1], error)
        )
    else:
        sys.stderr.write("nb2pipe: task %r failed: %s\n" % (_STATE.get("task"), error))
    sys.stderr.flush()
    _report(where, error)


# ---------------------------------------------------------------- runs, read back (the IPython extension)
# `%nb2pipe inputs|outputs|runs` (python/nb2pipe) reads the store through these, so a
# value is found and decoded exactly as a task finds and decodes it.
def list_runs(runs_dir, pipeline=None):
    """Run records (run.json as dicts) under <runs_dir>/<pipeline>/<run>/, newest first;
    each gets "_path" (its run.json) and "_latest" (the one `latest` names)."""
    out = []
    if not os.path.isdir(runs_dir):
        return out
    for p in sorted(os.listdir(runs_dir)):
        if pipeline is not None and p != pipeline:
            continue
        base = os.path.join(runs_dir, p)
        try:
            with open(os.path.join(base, "latest")) as f:
                latest = f.read().strip()
        except OSError:
            latest = None
        if not os.path.isdir(base):
            continue
        for r in sorted(os.listdir(base)):
            path = os.path.join(base, r, "run.json")
            try:
                with open(path) as f:
                    rec = json.load(f)
                stamp = os.stat(path).st_mtime_ns
            except (OSError, ValueError):
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get("tasks"), list):
                continue
            rec["_path"], rec["_latest"], rec["_stamp"] = path, r == latest, stamp
            out.append(rec)
    out.sort(key=lambda r: (r["_latest"], r["_stamp"], str(r.get("run_id"))), reverse=True)
    return out


def task_record(record, task):
    for t in record.get("tasks", []):
        if t.get("name") == task:
            return t
    return None


def task_values(record, task, which, data=None):
    """{name: value}: with which="inputs" the values `task` received in the run (each
    read from the run its producer's values were in), with "outputs" those it handed on.
    `data` overrides the store the record names (a copied folder, say). LookupError
    says what is missing and why."""
    t = task_record(record, task)
    if t is None:
        raise LookupError("run %s has no task %r; its tasks: %s" % (record.get("run_id"), task, ", ".join(x.get("name", "?") for x in record.get("tasks", []))))
    runs = record.get("value_runs") or {}
    if which == "inputs":
        wanted = sorted((t.get("inputs") or {}).items())
    elif which == "outputs":
        wanted = [(name, task) for name in t.get("outputs") or []]
    else:
        raise ValueError("which must be 'inputs' or 'outputs', not %r" % which)
    url = data or record.get("data")
    _STATE.update(pipeline=record["pipeline"], store_url=url)
    _STATE.pop("store", None)
    s = store()
    values = {}
    for name, producer in wanted:
        run = runs.get(producer, record.get("run_id"))
        meta = s.get("%s/values/%s/%s.format" % (_run_prefix(run), producer, name))
        if meta is None:
            state = (task_record(record, producer) or {}).get("state", "not in this run")
            raise LookupError(
                "%r is not in the data store %s: task %r (%s) did not store it in run %s" % (name, url, producer, state, run)
            )
        fmt, raw, _ = _follow(s, name, fmt=meta.decode(), origin=(producer, run))
        values[name] = _loads(fmt, raw)
    return values
