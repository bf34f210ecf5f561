#!/usr/bin/env bash
# Make sure the browser tests can run: Debian's Chromium and its chromedriver, installed from
# Debian's packages when they are missing (as root; apt-get update first on a fresh machine).
# Prints the paths; exits non-zero with one FAIL line when they cannot be had.
set -euo pipefail

have() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }

if ! have; then
  if [ "$(id -u)" != 0 ]; then
    echo "FAIL: the browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver, as root)" >&2
    exit 1
  fi
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >"$log" 2>&1; }
  if ! install; then
    # A fresh machine may have no package lists yet.
    if ! { apt-get update -qq >"$log" 2>&1 && install; }; then
      echo "FAIL: cannot install chromium and chromium-driver from Debian:" >&2
      tail -n 5 "$log" >&2
      exit 1
    fi
  fi
fi
have || { echo "FAIL: chromium or chromedriver missing after the install" >&2; exit 1; }
echo /usr/bin/chromium /usr/bin/chromedriver
