#!/usr/bin/env bash
# deploy/compose/compose.yaml: validated against the Compose schema by Debian's
# docker-compose (1.29; `config` needs no daemon; installed when missing), checked for its
# structure (scripts/checks.d/compose_check.py structure), then replayed without
# containers: the seed, hub and collector commands of the file run as local processes
# against a fresh PostgreSQL database (scripts/setup.d/postgres.sh's server), and the demo
# user's dashboard must show the week of flows (compose_check.py replay). `docker compose
# config` also runs when a docker CLI with the compose plugin is installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/policyhub-target}"
PY=/usr/bin/python3
COMPOSE=deploy/compose/compose.yaml
ADMIN_URL="${POLICYHUB_TEST_POSTGRES_URL:-postgres://policyhub:policyhub@127.0.0.1:5432/policyhub_test}"
DB="policyhub_compose_check_$$"   # one per run: runs side by side do not collide
URL="${ADMIN_URL%/*}/$DB"
export PGOPTIONS="--client-min-messages=warning"

if ! "$PY" -c 'import yaml' 2>/dev/null || ! command -v docker-compose >/dev/null; then
  echo "installing python3-yaml docker-compose"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # Without recommends: the validator only, no container runtime.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-yaml docker-compose >/dev/null
fi
docker-compose -p policyhub -f "$COMPOSE" config --quiet
if docker compose version >/dev/null 2>&1; then
  docker compose -p policyhub -f "$COMPOSE" config --quiet
fi
"$PY" scripts/checks.d/compose_check.py structure "$COMPOSE" deploy/Dockerfile

cargo build --quiet -p policyhub-cli -p policyhub-collector
psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
work="$(mktemp -d)"
trap 'rm -rf "$work"; psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true' EXIT
"$PY" scripts/checks.d/compose_check.py replay "$COMPOSE" \
  "$CARGO_TARGET_DIR/debug/policyhub" "$CARGO_TARGET_DIR/debug/policyhub-collector" "$URL" "$work" 20000
