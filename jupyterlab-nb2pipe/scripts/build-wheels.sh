#!/usr/bin/env bash
# Build (or reuse) the two wheels a Jupyter image needs:
#   nb2pipe             the Rust binary and the IPython extension (maturin, bindings = "bin"; repository root)
#   jupyterlab_nb2pipe  the server extension, lab extension and nbconvert exporter
#
#   PYTHON=/path/to/venv/bin/python jupyterlab-nb2pipe/scripts/build-wheels.sh
#
# PYTHON must have maturin, hatchling, hatch-jupyter-builder and jupyterlab (the
# test venv of tests/run.sh has them). stdout: the two wheel paths, one a line;
# progress on stderr.
#
# Cache (${NB2PIPE_CACHE:-~/.cache/nb2pipe}):
#   wheels/<name>-<hash>/*.whl     keyed by the sha256 of the wheel's inputs: unchanged
#                                  inputs are never rebuilt
#   npm/                           npm's download cache for the lab extension build
# The nb2pipe wheel packs the release binary of ${CARGO_TARGET_DIR:-~/.cache/nb2pipe/target}, the
# folder `cargo build --release` and tests/run-all.sh build into: when that build is
# current, maturin compiles nothing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EXT="$(dirname "$HERE")"
ROOT="$(dirname "$EXT")"
CACHE="${NB2PIPE_CACHE:-$HOME/.cache/nb2pipe}"
PYTHON="${PYTHON:?set PYTHON to a python with maturin, hatchling, hatch-jupyter-builder, jupyterlab}"
BIN_DIR="$(dirname "$PYTHON")"

log() { printf '[build-wheels] %s\n' "$*" >&2; }

# sha256 over the relative paths and contents of the given files and folders.
inputs_hash() {
    local base="$1"; shift
    (cd "$base" && find "$@" -type f \
        -not -path '*/node_modules/*' -not -path '*/__pycache__/*' -not -path '*/labextension/*' \
        -not -path '*/lib/*' -not -name '*.tsbuildinfo' -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16
}

# Builds into a temp folder, moved into place only when complete (and only if the
# sources did not change meanwhile, so a cache entry always matches its key).
cached_wheel() {
    local name="$1" hash="$2" builder="$3" rehash="$4"
    local dir="$CACHE/wheels/$name-$hash"
    if compgen -G "$dir/*.whl" >/dev/null; then
        log "$name: cached ($dir)"
    else
        local tmp="$dir.tmp.$$"
        rm -rf "$tmp" && mkdir -p "$tmp"
        local t0=$SECONDS
        "$builder" "$tmp"
        compgen -G "$tmp/*.whl" >/dev/null || { log "$name: the build made no wheel"; exit 1; }
        if [ "$("$rehash")" != "$hash" ]; then
            rm -rf "$tmp"
            log "$name: sources changed during the build; run again"
            exit 1
        fi
        rm -rf "$dir" && mv "$tmp" "$dir"
        log "$name: built in $((SECONDS - t0))s"
    fi
    ls "$dir"/*.whl
}

TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nb2pipe/target}"
build_nb2pipe() {
    log "nb2pipe: maturin, release profile (CARGO_TARGET_DIR=$TARGET_DIR)"
    (cd "$ROOT/wheel" && CARGO_TARGET_DIR="$TARGET_DIR" "$BIN_DIR/maturin" build --release --locked \
        --out "$1" >&2)
}

build_extension() {
    log "jupyterlab_nb2pipe: npm ci, lab extension build, wheel"
    (
        cd "$EXT"
        export npm_config_cache="$CACHE/npm"
        rm -rf jupyterlab_nb2pipe/labextension lib tsconfig.tsbuildinfo
        npm ci --no-audit --no-fund --prefer-offline >&2
        # `jupyter labextension build` must come from the venv's jupyterlab.
        PATH="$BIN_DIR:$PATH" npm run build:prod >&2
        "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation --wheel-dir "$1" . >&2
    )
}

nb_inputs() { inputs_hash "$ROOT" Cargo.toml Cargo.lock wheel/pyproject.toml wheel/python README.md src templates; }
ext_inputs() {
    inputs_hash "$EXT" package.json package-lock.json tsconfig.json pyproject.toml install.json README.md \
        src style jupyterlab_nb2pipe jupyter-config
}
mkdir -p "$CACHE/wheels"
cached_wheel nb2pipe "$(nb_inputs)" build_nb2pipe nb_inputs
cached_wheel jupyterlab_nb2pipe "$(ext_inputs)" build_extension ext_inputs
