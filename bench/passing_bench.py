"""Cost of handing a value from one task to the next: time and bytes to save and load it
through the task runtime's own code (templates/task/nb2pipe_runtime.py, local-directory
store, so disk writes are included), per format.

    python bench/passing_bench.py [--runs 3] [--mb 100] [--dir DIR]

Needs pandas, numpy, pyarrow, scikit-learn and cloudpickle (the "exec" test venv has
them). Values: a DataFrame of about --mb MB (8 float64 columns, an int64 column and a
short-string column), a float64 array of --mb MB (random, so incompressible), and a
RandomForestClassifier (100 trees) fitted on scikit-learn's bundled digits. "runtime"
rows are what a task does by default (Parquet for pandas, .npy for numpy, cloudpickle
otherwise); the other rows force a format to compare. Prints a Markdown table."""
import argparse
import gc
import io
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "templates", "task"))
import nb2pipe_runtime as rt  # noqa: E402


def make_values(mb):
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)

    def frame(rows):
        df = pd.DataFrame({"f%d" % i: rng.normal(size=rows) for i in range(8)})
        df["n"] = rng.integers(0, 1_000_000, size=rows)
        df["label"] = pd.Series(rng.integers(0, 1000, size=rows)).map(lambda i: "item-%04d" % i)
        return df

    # Bytes per row depend on pandas' string storage: measure, then size to --mb.
    per_row = frame(100_000).memory_usage(deep=True).sum() / 100_000
    df = frame(int(mb * 1e6 / per_row))
    arr = rng.normal(size=int(mb * 1e6 / 8))
    digits = load_digits()
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(digits.data, digits.target)
    return [
        ("DataFrame %.0f MB in memory" % (df.memory_usage(deep=True).sum() / 1e6), df, ["runtime", "pickle", "cloudpickle"]),
        ("ndarray float64 %.0f MB" % (arr.nbytes / 1e6), arr, ["runtime", "pickle", "cloudpickle"]),
        ("RandomForestClassifier (100 trees, digits)", model, ["runtime", "pickle"]),
    ]


def encode(value, how):
    if how == "runtime":
        return rt._dumps(value)
    if how == "pickle":
        return "pkl", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    import cloudpickle

    return "pkl", cloudpickle.dumps(value)


def one(store, value, how, key):
    gc.collect()
    t0 = time.perf_counter()
    fmt, data = encode(value, how)
    store.put(key + "." + fmt, data)
    store.put(key + ".format", fmt.encode())
    t1 = time.perf_counter()
    got_fmt = store.get(key + ".format").decode()
    back = rt._loads(got_fmt, store.get(key + "." + got_fmt))
    t2 = time.perf_counter()
    del back
    return fmt, len(data), t1 - t0, t2 - t1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mb", type=float, default=100)
    ap.add_argument("--dir", default=None, help="store folder (default: a temporary one)")
    args = ap.parse_args()
    root = args.dir or tempfile.mkdtemp(prefix="nb2pipe-bench-")
    store = rt._LocalStore(root)
    import numpy, pandas, pyarrow, sklearn, cloudpickle  # noqa: E401

    print("Python %s, numpy %s, pandas %s, pyarrow %s, scikit-learn %s, cloudpickle %s; %d runs, median (min-max)\n"
          % (sys.version.split()[0], numpy.__version__, pandas.__version__, pyarrow.__version__, sklearn.__version__, cloudpickle.__version__, args.runs))
    print("| value | format | bytes | save | load |")
    print("|---|---|---|---|---|")
    try:
        for label, value, ways in make_values(args.mb):
            for how in ways:
                runs = [one(store, value, how, "bench/%s" % how) for _ in range(args.runs)]
                fmt, size = runs[0][0], runs[0][1]
                name = {"runtime": "%s (runtime default)" % {"pkl": "cloudpickle"}.get(fmt, fmt)}.get(how, how)

                def stat(xs):
                    return "%.2f s (%.2f-%.2f)" % (statistics.median(xs), min(xs), max(xs))

                print("| %s | %s | %.1f MB | %s | %s |" % (label, name, size / 1e6, stat([r[2] for r in runs]), stat([r[3] for r in runs])))
                sys.stdout.flush()
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
