#!/usr/bin/env bash
# Installs what the web console's browser tests (tests/integration/ui) need: Debian's
# chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver), when missing.
# Never fails the caller: where they cannot be installed (no root, no apt, no network)
# it says so, and those tests skip with that reason in pytest's -ra summary.
set -uo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ops/browser.sh: chromium/chromedriver missing and cannot apt-get install them here (needs root and apt);" \
       "the browser tests will be skipped" >&2
  exit 0
fi
echo "ops/browser.sh: installing chromium and chromium-driver (Debian packages)" >&2
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
       chromium chromium-driver; } >/tmp/saeguard-browser-install.log 2>&1; then
  echo "ops/browser.sh: installing chromium failed (see /tmp/saeguard-browser-install.log);" \
       "the browser tests will be skipped" >&2
fi
exit 0
