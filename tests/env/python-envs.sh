#!/usr/bin/env bash
# Build (or reuse from cache) the Python virtualenvs nb2pipe's tests validate against.
#
#   tests/env/python-envs.sh [NAME...]          # default: all of them
#   eval "$(tests/env/python-envs.sh)"           # sets NB2PIPE_PY_* for the test runner
#   tests/env/python-envs.sh --refreeze NAME...  # re-resolve requirements/NAME.in into NAME.txt
#
# NAMEs: airflow3 airflow2 validate kfp exec (see tests/env/README.md).
#
# stdout carries only the `export NB2PIPE_PY_<NAME>=<venv>/bin/python` lines (one per
# venv that is ready); progress, timings and errors go to stderr. The exit status is
# non-zero if any requested venv could not be built (the exports of the others are
# still printed).
#
# Cache: ${NB2PIPE_CACHE:-$HOME/.cache/nb2pipe}/venvs/<name>-<hash>, where <hash> is the
# first 12 hex digits of the sha256 of requirements/<name>.txt. A venv is built in a
# temporary directory beside it and moved into place only after the install and its
# smoke test passed, so an interrupted build is never reused. Installer output goes to
# .../logs/<name>-<hash>.log. Old <name>-<otherhash> venvs are kept (another checkout
# may use them); NB2PIPE_ENV_PRUNE=1 deletes them.
#
# Installer: `uv pip install --no-deps -r requirements/<name>.txt` (uv, pinned below, is
# itself installed from PyPI with pip into <cache>/tools; it downloads in parallel, which
# makes a cold run ~3x faster than pip here). If uv cannot be set up or its install
# fails, the venv is rebuilt with `pip install --no-deps -r`. NB2PIPE_ENV_INSTALLER=pip
# forces pip. PIP_INDEX_URL / PIP_EXTRA_INDEX_URL / PIP_CERT are handed on to uv.
#
# Environment knobs: NB2PIPE_CACHE, NB2PIPE_PYTHON (a CPython 3.11 to base the venvs
# on; the frozen pins are cp311 wheels), NB2PIPE_ENV_JOBS (parallel builds, default 2),
# NB2PIPE_ENV_PRUNE, NB2PIPE_ENV_INSTALLER (auto|uv|pip). pip's own PIP_* variables
# (index URL, CA bundle, ...) pass through.
#
# Airflow notes (checked on 3.3.2 and 2.10.5): importing DagBag needs no database and
# no env var beyond AIRFLOW_HOME pointing at a scratch dir (else ~/airflow is created;
# 2.10 also touches an empty airflow.db there). AIRFLOW__CORE__UNIT_TEST_MODE is not
# needed. core.load_examples defaults to True: Airflow 2's DagBag then also parses
# ~60 example DAGs (with DB errors in the log) unless include_examples=False or
# AIRFLOW__CORE__LOAD_EXAMPLES=False; Airflow 3.3's DagBag has no include_examples
# argument and reads that setting, so set AIRFLOW__CORE__LOAD_EXAMPLES=False for both.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQ_DIR="$HERE/requirements"
CACHE="${NB2PIPE_CACHE:-$HOME/.cache/nb2pipe}"
VENV_ROOT="$CACHE/venvs"
LOG_DIR="$CACHE/logs"
JOBS="${NB2PIPE_ENV_JOBS:-2}"
INSTALLER="${NB2PIPE_ENV_INSTALLER:-auto}"
UV_VERSION=0.13.9
UV=""
# Longest builds first, so two parallel slots finish close together.
ALL_ENVS=(exec airflow3 airflow2 validate kfp)

log() { printf '[python-envs] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; }

export_var() {
    case "$1" in
        airflow3) echo NB2PIPE_PY_AIRFLOW3 ;;
        airflow2) echo NB2PIPE_PY_AIRFLOW2 ;;
        validate) echo NB2PIPE_PY_VALIDATE ;;
        kfp) echo NB2PIPE_PY_KFP ;;
        exec) echo NB2PIPE_PY_EXEC ;;
        *) return 1 ;;
    esac
}

now_ms() { date +%s%3N; }
secs_since() { local ms=$(($(now_ms) - $1)); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }

# A CPython 3.11 with a working venv/ensurepip. pyenv shims are resolved to the real
# interpreter so the venvs do not depend on the shim.
find_python() {
    local cand exe
    local -a cands=()
    if [[ -n "${NB2PIPE_PYTHON:-}" ]]; then
        cands=("$NB2PIPE_PYTHON")
    else
        cands=(python3.11)
        for exe in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.11*/bin/python3.11 /usr/bin/python3.11 python3; do
            cands+=("$exe")
        done
    fi
    for cand in "${cands[@]}"; do
        command -v "$cand" >/dev/null 2>&1 || continue
        exe="$("$cand" -c 'import sys, venv, ensurepip
if sys.version_info[:2] == (3, 11) and sys.implementation.name == "cpython":
    print(sys.executable)' 2>/dev/null)" || continue
        if [[ -n "$exe" ]]; then
            echo "$exe"
            return 0
        fi
    done
    return 1
}

# ---------------------------------------------------------------- smoke tests
# Run with the candidate venv's python, before it is moved into place. $1 = venv dir.
smoke_airflow() {
    local venv="$1" major="$2" scratch rc=0
    scratch="$(mktemp -d)"
    AIRFLOW_HOME="$scratch/home" AIRFLOW__CORE__LOAD_EXAMPLES=False NB2PIPE_AF_MAJOR="$major" \
        "$venv/bin/python" - <<'PY' || rc=$?
import os
import airflow
major = os.environ["NB2PIPE_AF_MAJOR"]
assert airflow.__version__.startswith(major + "."), airflow.__version__
if major == "3":
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import DAG
else:
    from airflow.models.dagbag import DagBag
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
PY
    if [[ $rc -eq 0 ]]; then
        # The probe on the example DAG: DagBag parse plus offline pod building/rendering.
        AIRFLOW_HOME="$scratch/home" "$venv/bin/python" "$HERE/airflow_probe.py" \
            "$HERE/probe_dag_example.py" --out "$scratch/probe.json" 2>"$scratch/probe.err" || rc=$?
        [[ $rc -eq 0 ]] || tail -n 20 "$scratch/probe.err" >&2
    fi
    if [[ $rc -eq 0 ]]; then
        "$venv/bin/python" - "$scratch/probe.json" <<'PY' || rc=$?
import json, sys
d = json.load(open(sys.argv[1]))
assert not d["import_errors"], d["import_errors"]
assert d["dags"]["probe_example"]["edges"] == [["prepare", "train"]], d["dags"]
assert set(d["pods"]) == {"prepare", "train"} == set(d["rendered_pods"]), (d["pod_errors"], d["render_errors"])
env = {e["name"]: e.get("value") for e in d["rendered_pods"]["train"]["spec"]["containers"][0]["env"]}
assert env["ALPHA"] == "0.5" and env["RUN_ID"] == "r1", env
PY
    fi
    rm -rf "$scratch"
    return $rc
}

smoke_validate() {
    "$1/bin/python" - <<'PY'
from hera.workflows.models import Workflow
import jsonschema, kubernetes_validate, yaml
doc = yaml.safe_load("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: smoke-}
spec:
  entrypoint: main
  templates:
  - name: main
    container: {image: alpine, command: [echo, hi]}
""")
assert Workflow.model_validate(doc, strict=True).spec.entrypoint == "main"
pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
       "spec": {"containers": [{"name": "c", "image": "i"}]}}
kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
jsonschema.validate({"a": 1}, {"type": "object", "required": ["a"]})
PY
}

smoke_kfp() {
    "$1/bin/python" - <<'PY'
from kfp.pipeline_spec import pipeline_spec_pb2
import kfp.components, kfp.kubernetes
from google.protobuf import json_format
spec = json_format.ParseDict({"pipelineInfo": {"name": "smoke"}}, pipeline_spec_pb2.PipelineSpec())
assert spec.pipeline_info.name == "smoke"
PY
}

smoke_exec() {
    local venv="$1" scratch rc=0
    scratch="$(mktemp -d)"
    # PySpark needs a JVM (Debian's; installed here when missing).
    if ! command -v java >/dev/null 2>&1; then
        log "exec: installing Debian's openjdk-17-jre-headless for PySpark"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless) >&2 || rc=1
    fi
    java -version >/dev/null 2>&1 || { log "exec: no working java for PySpark"; rc=1; }
    # `jupyter kernelspec list` from the venv must show its own python3 kernel (the
    # kernel.json shipped in ipykernel's wheel under <venv>/share/jupyter says "python",
    # which jupyter_client maps to the python running nbclient: nothing absolute in it).
    if ! "$venv/bin/jupyter" kernelspec list >"$scratch/specs" 2>&1; then
        cat "$scratch/specs" >&2
        rc=1
    elif ! grep -Eq "^ +python3 +$venv/share/jupyter/kernels/python3\$" "$scratch/specs"; then
        log "exec: python3 kernelspec is not the venv's own:"
        cat "$scratch/specs" >&2
        rc=1
    fi
    if [[ $rc -eq 0 ]]; then
        MPLCONFIGDIR="$scratch/mpl" "$venv/bin/python" - <<'PY' || rc=$?
import sys
import nbclient, nbformat, pandas, sklearn, matplotlib, pyarrow, cloudpickle, moto, boto3, pyspark
from moto.server import ThreadedMotoServer
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.prefix)")])
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
out = "".join(o.get("text", "") for o in nb.cells[0].outputs).strip()
assert out == sys.prefix, (out, sys.prefix)
PY
    fi
    rm -rf "$scratch"
    return $rc
}

smoke() {
    case "$1" in
        airflow3) smoke_airflow "$2" 3 ;;
        airflow2) smoke_airflow "$2" 2 ;;
        validate) smoke_validate "$2" ;;
        kfp) smoke_kfp "$2" ;;
        exec) smoke_exec "$2" ;;
    esac
}

# ---------------------------------------------------------------- installers
# Install uv==$UV_VERSION into <cache>/tools/uv-$UV_VERSION (pip --target, under a lock,
# moved into place when done). Sets UV; returns 1 if that cannot be done.
ensure_uv() {
    local dir="$CACHE/tools/uv-$UV_VERSION" tmp lockfd
    if [[ ! -x "$dir/bin/uv" ]]; then
        mkdir -p "$CACHE/tools"
        exec {lockfd}>"$CACHE/tools/.uv-$UV_VERSION.lock"
        flock "$lockfd"
        if [[ ! -x "$dir/bin/uv" ]]; then
            tmp="$CACHE/tools/.tmp-uv-$UV_VERSION-$$"
            rm -rf "$CACHE/tools/.tmp-uv-$UV_VERSION-"*
            if ! "$PY" -m pip install --disable-pip-version-check --no-input --no-compile \
                --no-deps --target "$tmp" "uv==$UV_VERSION" >"$LOG_DIR/uv-bootstrap.log" 2>&1 ||
                ! "$tmp/bin/uv" --version >>"$LOG_DIR/uv-bootstrap.log" 2>&1; then
                rm -rf "$tmp"
                exec {lockfd}>&-
                return 1
            fi
            mv -T "$tmp" "$dir"
        fi
        exec {lockfd}>&-
    fi
    "$dir/bin/uv" --version >/dev/null 2>&1 || return 1
    UV="$dir/bin/uv"
    # uv does not read pip's settings: pass on the ones a proxy/mirror setup uses.
    if [[ -n "${PIP_INDEX_URL:-}" && -z "${UV_INDEX_URL:-}${UV_DEFAULT_INDEX:-}" ]]; then
        export UV_INDEX_URL="$PIP_INDEX_URL"
    fi
    if [[ -n "${PIP_EXTRA_INDEX_URL:-}" && -z "${UV_EXTRA_INDEX_URL:-}${UV_INDEX:-}" ]]; then
        export UV_EXTRA_INDEX_URL="$PIP_EXTRA_INDEX_URL"
    fi
    if [[ -n "${PIP_CERT:-}" && -z "${SSL_CERT_FILE:-}" ]]; then
        export SSL_CERT_FILE="$PIP_CERT"
    fi
    export UV_CACHE_DIR="${UV_CACHE_DIR:-$CACHE/uv-cache}"
}

installer_name() { if [[ -n "$UV" ]]; then echo "uv $UV_VERSION"; else echo pip; fi; }

# make_venv DIR NAME: a fresh venv (with pip, so `pip check`/`pip freeze` work in it).
make_venv() {
    rm -rf "$1"
    "$PY" -m venv --prompt "$2" "$1"
}

# install_reqs VENV REQ: no resolver; compiled bytecode so first imports are fast.
install_reqs() {
    local venv="$1" req="$2"
    if [[ -n "$UV" ]]; then
        echo "--- uv $UV_VERSION: uv pip install --no-deps --compile-bytecode -r $req"
        "$UV" pip install --python "$venv/bin/python" --no-deps --compile-bytecode -r "$req"
    else
        echo "--- pip install --no-deps -r $req"
        "$venv/bin/python" -m pip install --no-deps --no-input --disable-pip-version-check \
            --progress-bar off -r "$req"
    fi
}

# ---------------------------------------------------------------- building
# Console scripts and bin/activate* carry the absolute path of the venv they were
# installed into; rewrite them from the temporary dir to the final one before the mv.
relocate() {
    local from="$1" to="$2" f
    while IFS= read -r -d '' f; do
        if grep -qIF -- "$from" "$f"; then
            sed -i "s|$from|$to|g" "$f"
        fi
    done < <(find "$from/bin" -maxdepth 1 -type f -print0)
    sed -i "s|$from|$to|g" "$from/pyvenv.cfg"
}

# Build or reuse one venv. Writes its python path to $STATE/<name>.py on success.
build_one() {
    local name="$1" req hash final tmp logf lock start
    start="$(now_ms)"
    req="$REQ_DIR/$name.txt"
    [[ -f "$req" ]] || { log "$name: missing $req"; return 1; }
    hash="$(sha256sum "$req" | cut -c1-12)"
    final="$VENV_ROOT/$name-$hash"
    logf="$LOG_DIR/$name-$hash.log"

    # One builder per venv at a time, across concurrent invocations too.
    lock="$VENV_ROOT/.$name-$hash.lock"
    exec {lockfd}>"$lock"
    if ! flock -n "$lockfd"; then
        log "$name: another process is building $final; waiting"
        flock "$lockfd"
    fi

    if [[ -d "$final" ]]; then
        if [[ -f "$final/.nb2pipe-env" ]] && "$final/bin/python" -c '' 2>/dev/null; then
            echo "$final/bin/python" >"$STATE/$name.py"
            log "$name: reused $final ($(secs_since "$start") s)"
            return 0
        fi
        log "$name: cached venv $final is unusable (base python gone?); rebuilding"
        rm -rf "$final"
    fi

    rm -rf "$VENV_ROOT/.tmp-$name-$hash-"*   # leftovers of interrupted builds (we hold the lock)
    tmp="$VENV_ROOT/.tmp-$name-$hash-$BASHPID"
    # shellcheck disable=SC2064  # expand now: $tmp is local and gone when the trap runs
    trap "rm -rf $(printf %q "$tmp")" EXIT
    {
        echo "=== $(date -u +%FT%TZ) building $name from $req with $PY"
    } >"$logf"
    log "$name: building $final with $(installer_name) (log: $logf)"
    if ! make_venv "$tmp" "$name" >>"$logf" 2>&1; then
        log "$name: python -m venv failed; last lines of $logf:"
        tail -n 30 "$logf" >&2
        return 1
    fi
    if ! install_reqs "$tmp" "$req" >>"$logf" 2>&1; then
        if [[ -n "$UV" ]]; then
            log "$name: uv install failed (see $logf); starting over with pip"
            UV=""
            if make_venv "$tmp" "$name" >>"$logf" 2>&1 && install_reqs "$tmp" "$req" >>"$logf" 2>&1; then
                :
            else
                log "$name: pip install failed too; last lines of $logf:"
                tail -n 40 "$logf" >&2
                return 1
            fi
        else
            log "$name: pip install failed; last lines of $logf:"
            tail -n 40 "$logf" >&2
            return 1
        fi
    fi
    local t_pip
    t_pip="$(secs_since "$start")"
    if ! "$tmp/bin/python" -m pip check >>"$logf" 2>&1; then
        log "$name: pip check failed (requirements/$name.txt is not a complete set?):"
        tail -n 20 "$logf" >&2
        return 1
    fi
    if ! smoke "$name" "$tmp" >>"$logf" 2>&1; then
        log "$name: smoke test failed; last lines of $logf:"
        tail -n 40 "$logf" >&2
        return 1
    fi
    relocate "$tmp" "$final"
    printf 'name=%s\nrequirements_sha256=%s\npython=%s\nbuilt=%s\n' \
        "$name" "$(sha256sum "$req" | cut -d' ' -f1)" "$("$PY" -V 2>&1)" "$(date -u +%FT%TZ)" \
        >"$tmp/.nb2pipe-env"
    mv -T "$tmp" "$final"
    trap - EXIT
    echo "$final/bin/python" >"$STATE/$name.py"
    log "$name: built in $(secs_since "$start") s (venv+install ${t_pip} s with $(installer_name)), $(du -sh "$final" | cut -f1)"

    if [[ "${NB2PIPE_ENV_PRUNE:-0}" == 1 ]]; then
        local old
        for old in "$VENV_ROOT/$name"-*; do
            [[ -d "$old" && "$old" != "$final" ]] || continue
            log "$name: pruning $old"
            rm -rf "$old"
        done
    fi
}

# Re-resolve requirements/<name>.in with pip's resolver, smoke-test it, and write the
# complete `pip freeze` to requirements/<name>.txt.
refreeze_one() {
    local name="$1" in="$REQ_DIR/$1.in" tmp logf start
    start="$(now_ms)"
    [[ -f "$in" ]] || { log "$name: missing $in"; return 1; }
    tmp="$VENV_ROOT/.refreeze-$name-$BASHPID"
    logf="$LOG_DIR/$name-refreeze.log"
    rm -rf "$tmp"
    # shellcheck disable=SC2064
    trap "rm -rf $(printf %q "$tmp")" EXIT
    log "$name: resolving $in (log: $logf)"
    if ! { make_venv "$tmp" "$name" && "$tmp/bin/python" -m pip install --no-input \
        --disable-pip-version-check --progress-bar off -r "$in" && "$tmp/bin/python" -m pip check &&
        smoke "$name" "$tmp"; } >"$logf" 2>&1; then
        log "$name: refreeze failed; last lines of $logf:"
        tail -n 40 "$logf" >&2
        return 1
    fi
    {
        echo "# Frozen set for the \"$name\" test venv (tests/env/python-envs.sh), from $name.in."
        echo "# CPython $("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])'), $(uname -m) Linux. Installed with pip install --no-deps -r: no resolver run."
        echo "# Regenerate: tests/env/python-envs.sh --refreeze $name. The venv cache key is this file's sha256."
        "$tmp/bin/python" -m pip freeze --disable-pip-version-check | LC_ALL=C sort -f
    } >"$REQ_DIR/$name.txt.new"
    mv "$REQ_DIR/$name.txt.new" "$REQ_DIR/$name.txt"
    log "$name: wrote $REQ_DIR/$name.txt ($(secs_since "$start") s)"
}

# ---------------------------------------------------------------- main
refreeze=0
names=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --refreeze) refreeze=1 ;;
        -*) usage; die "unknown option $1" ;;
        *)
            export_var "$1" >/dev/null || die "unknown venv '$1' (known: ${ALL_ENVS[*]})"
            names+=("$1")
            ;;
    esac
    shift
done
if [[ ${#names[@]} -eq 0 ]]; then
    [[ $refreeze -eq 0 ]] || die "--refreeze needs venv names"
    names=("${ALL_ENVS[@]}")
fi
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "NB2PIPE_ENV_JOBS must be a positive integer"
command -v flock >/dev/null || die "flock (util-linux) is required"

PY="$(find_python)" || die "no CPython 3.11 with venv/ensurepip found (set NB2PIPE_PYTHON; on Debian: apt-get install python3.11-venv)"
mkdir -p "$VENV_ROOT" "$LOG_DIR"
case "$INSTALLER" in
    pip) ;;
    uv | auto)
        # Only set up uv if something is to be built (a warm run never needs it).
        need_build=0
        for name in "${names[@]}"; do
            h="$(sha256sum "$REQ_DIR/$name.txt" 2>/dev/null | cut -c1-12)" || h=none
            [[ -f "$VENV_ROOT/$name-$h/.nb2pipe-env" ]] || need_build=1
        done
        if [[ $refreeze -eq 0 && $need_build -eq 1 ]] && ! ensure_uv; then
            [[ "$INSTALLER" == auto ]] || die "could not install uv $UV_VERSION (see $LOG_DIR/uv-bootstrap.log)"
            log "could not install uv $UV_VERSION (see $LOG_DIR/uv-bootstrap.log); using pip"
        fi
        ;;
    *) die "NB2PIPE_ENV_INSTALLER must be auto, uv or pip" ;;
esac
STATE="$(mktemp -d)"
declare -a PIDS=()
cleanup() {
    local p
    # Each job is its own process group (set -m below): stop pip/smoke children too,
    # so nothing keeps writing into a temporary venv the job's trap removes.
    for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
    rm -rf "$STATE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0="$(now_ms)"
set -m
for name in "${names[@]}"; do
    while [[ "$(jobs -rp | wc -l)" -ge "$JOBS" ]]; do
        wait -n || true
    done
    if [[ $refreeze -eq 1 ]]; then
        (refreeze_one "$name"; echo $? >"$STATE/$name.rc") &
    else
        (build_one "$name"; echo $? >"$STATE/$name.rc") &
    fi
    PIDS+=("$!")
done
wait || true
PIDS=()

failed=()
for name in "${names[@]}"; do
    [[ "$(cat "$STATE/$name.rc" 2>/dev/null)" == 0 ]] || failed+=("$name")
done
log "total $(secs_since "$t0") s for: ${names[*]}"
if [[ $refreeze -eq 0 ]]; then
    for name in "${names[@]}"; do
        [[ -f "$STATE/$name.py" ]] || continue
        printf 'export %s=%q\n' "$(export_var "$name")" "$(cat "$STATE/$name.py")"
    done
fi
if [[ ${#failed[@]} -gt 0 ]]; then
    log "FAILED: ${failed[*]}"
    exit 1
fi
