#!/usr/bin/env bash
# PostgreSQL for the store tests (crates/store): installed from Debian, started on
# 127.0.0.1:5432, with a `policyhub` role and database. Idempotent.
# The tests read POLICYHUB_TEST_POSTGRES_URL (default below).
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql
fi
version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
  pg_createcluster "$version" main >/dev/null
fi
if ! pg_lsclusters -h | awk '$1=="'"$version"'" && $2=="main" {print $4}' | grep -q online; then
  pg_ctlcluster "$version" main start
fi
for _ in $(seq 1 30); do
  pg_isready -h 127.0.0.1 -p 5432 -q && break
  sleep 1
done
su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='policyhub'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"CREATE ROLE policyhub LOGIN PASSWORD 'policyhub' CREATEDB\""
su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname='policyhub_test'\"" | grep -q 1 \
  || su postgres -c "createdb -O policyhub policyhub_test"
echo "postgres.sh: ready at postgres://policyhub:policyhub@127.0.0.1:5432/policyhub_test"
