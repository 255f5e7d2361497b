#!/usr/bin/env bash
# Chromium and chromedriver for the hub's UI test (crates/hub/tests/ui_browser.rs). Idempotent.
set -euo pipefail
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver
fi
