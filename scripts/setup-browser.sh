#!/usr/bin/env bash
# Install Debian's chromium for the browser tests (Playwright drives it; Playwright's
# own browser download cannot work on machines without general internet access).
# Best effort: without root or apt the browser tests are skipped and say why.
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-browser: cannot install chromium here (need root and apt-get); browser tests will be skipped"
  exit 0
fi
echo "setup-browser: installing chromium from Debian"
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
  || echo "setup-browser: chromium could not be installed; browser tests will be skipped"
exit 0
