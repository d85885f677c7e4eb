#!/usr/bin/env bash
# The README's test command: installs what the tests need (Python virtualenvs with
# Airflow 3.3 and 2.10, the Argo/Tekton/Kubernetes validators, kfp, the notebook
# runner) and runs every tier. A tier whose service is missing fails; nothing is
# skipped silently. Caches, keyed by their inputs:
#   cargo build output  ${CARGO_TARGET_DIR:-~/.cache/nb2pipe/target}: the README's
#                       `cargo build --release`, the tests and the nb2pipe wheel all
#                       use its one release build of nb2pipe
#   Python venvs        ~/.cache/nb2pipe/venvs/<name>-<hash of its requirements>
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nb2pipe/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
step() { printf '\n=== %s (%ss)\n' "$1" "$SECONDS" >&2; }

step "Python test environments"
eval "$(bash tests/env/python-envs.sh)"
for v in AIRFLOW3 AIRFLOW2 VALIDATE KFP EXEC; do
  var="NB2PIPE_PY_$v"
  if [ -z "${!var:-}" ]; then
    echo "error: the $v virtualenv could not be set up (see the log above)" >&2
    exit 1
  fi
done

step "Docker Engine, base image, registries"
eval "$(bash tests/env/docker.sh)"

# Release profile throughout: the binary the tests run is the one the README builds and
# the wheel packs, compiled once.
step "Build"
cargo build --release --locked
# The README's build above is the one the tests use: a dev-dependency turning on other
# features of a shared crate would make cargo compile the nb2pipe library a second time.
mkdir -p "$CARGO_TARGET_DIR"
blog="$CARGO_TARGET_DIR/all-targets-build.log"
cargo build --release --locked --all-targets -v > "$blog" 2>&1 || { tail -n 40 "$blog" >&2; exit 1; }
if grep -q -- '--crate-name nb2pipe --edition=2021 src/lib.rs .*--crate-type lib ' "$blog"; then
    echo "error: the test build compiled the nb2pipe library again (features differ; see $blog)" >&2
    exit 1
fi

step "Tests: unit, CLI, snapshots, injection, Airflow 3.3 and 2.10, targets, runs"
# CI=true makes insta fail on a missing or changed snapshot instead of writing one.
cargo test --release --locked --all-targets --no-fail-fast -- --test-threads "${NB2PIPE_TEST_THREADS:-2}"

step "Jupyter: nb2pipe wheel, server extension, nbconvert exporter, JupyterHub, browser (jupyterlab-nb2pipe/tests/run.sh)"
bash jupyterlab-nb2pipe/tests/run.sh

step "Done"
