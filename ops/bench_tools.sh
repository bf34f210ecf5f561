#!/usr/bin/env bash
# Make sure the benchmark suite can run: wrk (the load generator) from Debian's package when it
# is missing (as root; apt-get update first on a fresh machine). Prints its path; exits non-zero
# with one FAIL line when it cannot be had.
set -euo pipefail

if found=$(command -v wrk); then
  echo "$found"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "FAIL: the benchmarks need wrk (apt-get install wrk, as root)" >&2
  exit 1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >"$log" 2>&1; }
if ! install; then
  if ! { apt-get update -qq >"$log" 2>&1 && install; }; then
    echo "FAIL: cannot install wrk from Debian:" >&2
    tail -n 5 "$log" >&2
    exit 1
  fi
fi
command -v wrk
