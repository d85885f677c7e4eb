#!/usr/bin/env bash
# The Docker tier's services, for `eval "$(bash tests/env/docker.sh)"`:
#   - a Docker Engine (Debian's docker.io; dockerd started in the background if
#     `docker info` does not answer, log in ~/.cache/nb2pipe/logs/dockerd.log),
#   - a Python base image made without any registry (debootstrap + docker import),
#     cached: the image is reused when present, the rootfs tarball is kept under
#     ~/.cache/nb2pipe/base/ keyed by its inputs,
#   - Debian's docker-registry twice on 127.0.0.1: anonymous and htpasswd-protected.
# stdout holds only `export` lines; progress and errors go to stderr. Exit 1 when a
# service could not be started (the tests then fail, they never skip).
set -euo pipefail

CACHE="${NB2PIPE_CACHE:-$HOME/.cache/nb2pipe}"
LOGS="$CACHE/logs"
BASE_IMAGE="${NB2PIPE_TEST_BASE_IMAGE:-nb2pipe-test/python:3.11}"
REG_PORT="${NB2PIPE_TEST_REGISTRY_PORT:-5123}"
REG_AUTH_PORT="${NB2PIPE_TEST_REGISTRY_AUTH_PORT:-5124}"
REG_USER="nb2pipe"
# A fixed test-only password for a registry bound to loopback: not a secret.
REG_PASSWORD="nb2pipe-test-password"
mkdir -p "$LOGS" "$CACHE/base" "$CACHE/registry"

log() { printf 'docker.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

apt_install() {
  log "installing $* from Debian"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >"$LOGS/apt-docker.log" 2>&1 \
    || die "apt-get install $* failed (see $LOGS/apt-docker.log)"
}

# 1. The engine.
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

if ! docker info >/dev/null 2>&1; then
  if [ -n "${DOCKER_HOST:-}" ]; then
    die "DOCKER_HOST=$DOCKER_HOST does not answer"
  fi
  log "starting dockerd (log: $LOGS/dockerd.log)"
  nohup dockerd >"$LOGS/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || die "dockerd did not answer within 60 s (see $LOGS/dockerd.log)"
fi

# 2. The base image.
mirror() {
  # The first Debian URI apt's sources name (deb822 or one-line format).
  local m
  m=$(grep -hoE '^URIs:[[:space:]]*[^[:space:]]+' /etc/apt/sources.list.d/*.sources 2>/dev/null \
      | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$m" ] || m=$(grep -hoE '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+' /etc/apt/sources.list 2>/dev/null \
      | awk '{print $NF}' | grep -v security | head -n1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  MIRROR=$(mirror)
  KEY=$(printf 'minbase|python3,python3-venv,python3-pip|bookworm|%s|%s' "$MIRROR" "$(dpkg --print-architecture)" | sha256sum | cut -c1-16)
  TARBALL="$CACHE/base/bookworm-python-$KEY.tar"
  if [ ! -s "$TARBALL" ]; then
    ROOT=$(mktemp -d "$CACHE/base/rootfs.XXXXXX")
    log "debootstrap bookworm from $MIRROR (about 40 s; log: $LOGS/debootstrap.log)"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip bookworm "$ROOT" "$MIRROR" \
      >"$LOGS/debootstrap.log" 2>&1 || { rm -rf "$ROOT"; die "debootstrap failed (see $LOGS/debootstrap.log)"; }
    rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
    tar -C "$ROOT" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$ROOT"
  fi
  log "importing $TARBALL as $BASE_IMAGE"
  docker import "$TARBALL" "$BASE_IMAGE" >/dev/null || die "docker import failed"
fi

# 2b. The Spark base image: the same recipe with Debian's JRE, and the exec venv's
#     pyspark (requirements/exec.txt) installed into its system Python, so a Spark task's
#     image needs neither a registry nor a 450 MB download per build.
SPARK_IMAGE="${NB2PIPE_TEST_SPARK_IMAGE:-nb2pipe-test/spark:3.11}"
SPARK_PINS=$(grep -E '^(pyspark|py4j)==' "$(dirname "${BASH_SOURCE[0]}")/requirements/exec.txt" | sort | tr '\n' ' ')
SPARK_PKGS=python3,python3-venv,python3-pip,default-jre-headless
SPARK_KEY=$(printf 'minbase|%s|bookworm|%s|%s|%s' "$SPARK_PKGS" "$(mirror)" "$(dpkg --print-architecture)" "$SPARK_PINS" | sha256sum | cut -c1-16)
if [ "$(docker image inspect --format '{{index .Config.Labels "io.nb2pipe.test-key"}}' "$SPARK_IMAGE" 2>/dev/null)" != "$SPARK_KEY" ]; then
  TARBALL="$CACHE/base/bookworm-spark-$SPARK_KEY.tar"
  if [ ! -s "$TARBALL" ]; then
    ROOT=$(mktemp -d "$CACHE/base/rootfs.XXXXXX")
    log "debootstrap bookworm with a JRE (about 90 s; log: $LOGS/debootstrap-spark.log)"
    debootstrap --variant=minbase --include="$SPARK_PKGS" bookworm "$ROOT" "$(mirror)" \
      >"$LOGS/debootstrap-spark.log" 2>&1 || { rm -rf "$ROOT"; die "debootstrap failed (see $LOGS/debootstrap-spark.log)"; }
    UV="$CACHE/tools/uv-0.13.9/bin/uv"
    # shellcheck disable=SC2086
    if [ -x "$UV" ]; then
      "$UV" pip install -q --no-deps --python-version 3.11 --target "$ROOT/usr/local/lib/python3.11/dist-packages" $SPARK_PINS
    else
      python3 -m pip install -q --no-deps --target "$ROOT/usr/local/lib/python3.11/dist-packages" $SPARK_PINS
    fi >"$LOGS/spark-pip.log" 2>&1 || { rm -rf "$ROOT"; die "installing $SPARK_PINS failed (see $LOGS/spark-pip.log)"; }
    rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
    tar -C "$ROOT" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$ROOT"
  fi
  log "importing $TARBALL as $SPARK_IMAGE"
  docker import --change "LABEL io.nb2pipe.test-key=$SPARK_KEY" "$TARBALL" "$SPARK_IMAGE" >/dev/null || die "docker import failed"
fi

# 3. Two registries on loopback.
HTPASSWD="$CACHE/registry/htpasswd"
[ -s "$HTPASSWD" ] || htpasswd -Bbn "$REG_USER" "$REG_PASSWORD" >"$HTPASSWD"
write_config() { # name port [auth]
  local cfg="$CACHE/registry/$1.yml"
  {
    echo "version: 0.1"
    echo "log: {level: warn}"
    echo "storage:"
    echo "  filesystem: {rootdirectory: $CACHE/registry/$1-data}"
    echo "  delete: {enabled: true}"
    echo "http: {addr: 127.0.0.1:$2}"
    if [ "${3:-}" = auth ]; then
      echo "auth:"
      echo "  htpasswd: {realm: nb2pipe-test, path: $HTPASSWD}"
    fi
  } >"$cfg"
  echo "$cfg"
}
start_registry() { # name port [auth]
  if curl -fsS -o /dev/null -w '' "http://127.0.0.1:$2/v2/" 2>/dev/null \
     || curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/v2/" 2>/dev/null | grep -q 401; then
    return 0 # already serving
  fi
  local cfg
  cfg=$(write_config "$@")
  log "starting docker-registry $1 on 127.0.0.1:$2"
  nohup docker-registry serve "$cfg" >"$LOGS/registry-$1.log" 2>&1 &
  for _ in $(seq 1 30); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/v2/" 2>/dev/null || true)
    case "$code" in 200|401) return 0 ;; esac
    sleep 0.5
  done
  die "docker-registry $1 did not answer on 127.0.0.1:$2 (see $LOGS/registry-$1.log)"
}
start_registry anon "$REG_PORT"
start_registry auth "$REG_AUTH_PORT" auth

# 4. The base image in both registries, for the oci engine (which reads the base from
#    its registry). The authenticated push uses a throwaway client config.
push_base() { # registry name [config-dir]
  local ref="$1/$BASE_IMAGE" repo="${BASE_IMAGE%:*}" tag="${BASE_IMAGE##*:}"
  # Pushed already: the same image id, and the registry still serves the tag.
  if [ "$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE")" = "$(cat "$CACHE/registry/base-$2-pushed" 2>/dev/null)" ] \
     && curl -fsS -o /dev/null ${REG_CURL_AUTH:-} -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://$1/v2/$repo/manifests/$tag" 2>/dev/null; then
    return 0
  fi
  docker tag "$BASE_IMAGE" "$ref"
  docker ${3:+--config "$3"} push "$ref" >"$LOGS/push-base-$2.log" 2>&1 || die "docker push $ref failed (see $LOGS/push-base-$2.log)"
  docker image inspect --format '{{.Id}}' "$BASE_IMAGE" >"$CACHE/registry/base-$2-pushed"
}
push_base "127.0.0.1:$REG_PORT" anon
AUTH_CFG=$(mktemp -d)
printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"}}}' "$REG_AUTH_PORT" "$(printf '%s:%s' "$REG_USER" "$REG_PASSWORD" | base64 -w0)" >"$AUTH_CFG/config.json"
REG_CURL_AUTH="-u $REG_USER:$REG_PASSWORD" push_base "127.0.0.1:$REG_AUTH_PORT" auth "$AUTH_CFG"
rm -rf "$AUTH_CFG"

[ -n "${DOCKER_HOST:-}" ] && echo "export DOCKER_HOST='$DOCKER_HOST'"
echo "export NB2PIPE_TEST_BASE_IMAGE='$BASE_IMAGE'"
echo "export NB2PIPE_TEST_SPARK_IMAGE='$SPARK_IMAGE'"
echo "export NB2PIPE_TEST_BASE_IMAGE_OCI='127.0.0.1:$REG_PORT/$BASE_IMAGE'"
echo "export NB2PIPE_TEST_BASE_IMAGE_OCI_AUTH='127.0.0.1:$REG_AUTH_PORT/$BASE_IMAGE'"
echo "export NB2PIPE_TEST_REGISTRY='127.0.0.1:$REG_PORT'"
echo "export NB2PIPE_TEST_REGISTRY_AUTH='127.0.0.1:$REG_AUTH_PORT'"
echo "export NB2PIPE_TEST_REGISTRY_USER='$REG_USER'"
echo "export NB2PIPE_TEST_REGISTRY_PASSWORD='$REG_PASSWORD'"
log "ready"
