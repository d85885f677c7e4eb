#!/usr/bin/env bash
# The Jupyter tier: builds the nb2pipe and jupyterlab_nb2pipe wheels, installs them into a
# test venv, and runs
#   node     unit tests of the panel's graph layout (npm test)
#   pytest   the server extension through a real jupyter server, the nbconvert exporter,
#            and a real JupyterHub (configurable-http-proxy from npm, DummyAuthenticator,
#            SimpleLocalProcessSpawner) calling the extension through the hub
#   node     the browser test: JupyterLab + Debian's Chromium driven by playwright-core
# Everything it needs is installed here; a missing part fails the run, nothing is skipped.
#
# Caches (${NB2PIPE_CACHE:-~/.cache/nb2pipe}), each keyed by the hash of its inputs:
#   venvs/jupyter-<hash of tests/requirements.txt>    jupyterlab, jupyterhub, maturin, hatch...
#   wheels/<name>-<hash of the wheel's sources>        see scripts/build-wheels.sh
#   npm/tests-<hash of tests/e2e/package*.json>        playwright-core, configurable-http-proxy
# Screenshots and server logs: ${NB2PIPE_ARTEFACTS:-<repo>/target/jupyter-e2e}.
#
#   jupyterlab-nb2pipe/tests/run.sh [--refreeze]   # --refreeze: re-resolve requirements.in
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EXT="$(dirname "$HERE")"
ROOT="$(dirname "$EXT")"
CACHE="${NB2PIPE_CACHE:-$HOME/.cache/nb2pipe}"
PY="${NB2PIPE_PYTHON:-python3.11}"
ARTEFACTS="${NB2PIPE_ARTEFACTS:-$ROOT/target/jupyter-e2e}"
T0=$SECONDS
step() { printf '\n=== jupyter: %s (%ss)\n' "$1" "$((SECONDS - T0))" >&2; }
die() { printf 'jupyter tier: error: %s\n' "$*" >&2; exit 1; }
short_hash() { cat "$@" | sha256sum | cut -c1-12; }

command -v "$PY" >/dev/null || die "$PY not found (set NB2PIPE_PYTHON to a CPython 3.11)"
command -v npm >/dev/null || die "npm not found"

if [ "${1:-}" = "--refreeze" ]; then
    tmp="$(mktemp -d)"
    "$PY" -m venv "$tmp/venv"
    "$tmp/venv/bin/pip" install -q -r "$HERE/requirements.in"
    { echo "# Frozen from requirements.in by tests/run.sh --refreeze (CPython 3.11)."
      "$tmp/venv/bin/pip" freeze --exclude-editable | LC_ALL=C sort; } > "$HERE/requirements.txt"
    rm -rf "$tmp"
    echo "wrote $HERE/requirements.txt" >&2
    exit 0
fi

step "test venv"
VENV="$CACHE/venvs/jupyter-$(short_hash "$HERE/requirements.txt")"
# Built in place (scripts name their interpreter by absolute path); `.complete` marks
# a finished install, so an interrupted one is rebuilt rather than reused.
if [ ! -f "$VENV/.complete" ]; then
    mkdir -p "$CACHE/venvs" "$CACHE/logs"
    vlog="$CACHE/logs/$(basename "$VENV").log"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q -r "$HERE/requirements.txt" > "$vlog" 2>&1 \
        || { tail -n 30 "$vlog" >&2; rm -rf "$VENV"; die "pip install failed (log: $vlog)"; }
    touch "$VENV/.complete"
fi
"$VENV/bin/python" -c "import jupyterlab, jupyterhub, maturin, hatch_jupyter_builder" \
    || die "the test venv $VENV is incomplete; delete it and rerun"

step "wheels"
mapfile -t WHEELS < <(PYTHON="$VENV/bin/python" bash "$EXT/scripts/build-wheels.sh")
[ "${#WHEELS[@]}" -eq 2 ] || die "expected two wheels, got: ${WHEELS[*]:-none}"
STAMP="$VENV/.nb2pipe-wheels"
if [ "$(cat "$STAMP" 2>/dev/null)" != "${WHEELS[*]}" ]; then
    "$VENV/bin/pip" install -q --no-deps --force-reinstall "${WHEELS[@]}"
    echo "${WHEELS[*]}" > "$STAMP"
fi
"$VENV/bin/nb2pipe" --version >&2 || die "the nb2pipe wheel did not put nb2pipe on the venv's PATH"
# Captured first: `grep -q` closing the pipe early would fail it under pipefail.
labext="$("$VENV/bin/jupyter" labextension list 2>&1)"
grep -q "jupyterlab-nb2pipe.*enabled.*OK" <<<"$labext" || { echo "$labext" >&2; die "the lab extension is not installed"; }
srvext="$("$VENV/bin/jupyter" server extension list 2>&1)"
grep -q "jupyterlab_nb2pipe.*enabled" <<<"$srvext" || { echo "$srvext" >&2; die "the server extension is not enabled"; }

step "npm test packages"
NODE_DIR="$CACHE/npm/tests-$(short_hash "$HERE/e2e/package.json" "$HERE/e2e/package-lock.json")"
if [ ! -d "$NODE_DIR/node_modules/playwright-core" ]; then
    tmp="$NODE_DIR.tmp.$$"
    rm -rf "$tmp" && mkdir -p "$tmp"
    cp "$HERE/e2e/package.json" "$HERE/e2e/package-lock.json" "$tmp/"
    (cd "$tmp" && npm_config_cache="$CACHE/npm/cache" npm ci --no-audit --no-fund --prefer-offline >&2)
    rm -rf "$NODE_DIR" && mv "$tmp" "$NODE_DIR"
fi
CHP="$NODE_DIR/node_modules/configurable-http-proxy/bin/configurable-http-proxy"
[ -f "$CHP" ] || die "configurable-http-proxy is missing from $NODE_DIR"

step "chromium"
if ! command -v chromium >/dev/null; then
    [ "$(id -u)" = 0 ] || die "chromium is not installed and this is not root: apt-get install -y chromium"
    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >&2 \
        || die "apt-get install chromium failed"
fi
chromium --version >&2 || die "chromium does not start"

mkdir -p "$ARTEFACTS"
export PATH="$VENV/bin:$PATH"
unset NB2PIPE_BIN

step "unit: the graph layout (node --test)"
# node_modules is there once a wheel was built here; a cached wheel needs it installed.
(cd "$EXT" && { [ -d node_modules/typescript ] || npm_config_cache="$CACHE/npm" npm ci --no-audit --no-fund --prefer-offline >&2; } && npm test >&2)

step "pytest: server extension, nbconvert exporter, JupyterHub"
NB2PIPE_CHP="$CHP" "$VENV/bin/python" -m pytest -p no:cacheprovider -q "$HERE" \
    -o junit_family=xunit2 --junitxml="$ARTEFACTS/pytest.xml"

step "browser: JupyterLab + Chromium (playwright-core)"
NB2PIPE_VENV_BIN="$VENV/bin" NB2PIPE_NODE_PATH="$NODE_DIR/node_modules" NB2PIPE_ARTEFACTS="$ARTEFACTS" \
    node --test --test-reporter=spec "$HERE/e2e/"

step "done; screenshots in $ARTEFACTS"
