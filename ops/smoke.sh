#!/usr/bin/env bash
# Smoke check of one running console: health 200, /metrics reachable, the audit API refusing
# no key and serving the key, one send and its idempotent replay.
#   SOFIIA_TOKEN=<operator token> SOFIIA_AUDIT_KEY=<audit key> ops/smoke.sh BASE
# Prints one PASS/FAIL line per check and a final PASS or FAIL; exits 0 only on PASS.
set -euo pipefail
if [ "$#" -ne 1 ]; then
  echo "usage: SOFIIA_TOKEN=... SOFIIA_AUDIT_KEY=... $0 BASE" >&2
  echo "FAIL"
  exit 1
fi
exec python3 "$(dirname "$0")/smokecheck.py" smoke "$1"
