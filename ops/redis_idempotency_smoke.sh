#!/usr/bin/env bash
# Redis idempotency A/B smoke: one send through instance A, its replay through instance B.
# Checks the replay header, the identical body and a single stored message.
#   SOFIIA_TOKEN=<operator token> ops/redis_idempotency_smoke.sh BASE_A BASE_B
# Prints one PASS/FAIL line per check and a final PASS or FAIL; exits 0 only on PASS.
set -euo pipefail
if [ "$#" -ne 2 ]; then
  echo "usage: SOFIIA_TOKEN=... $0 BASE_A BASE_B" >&2
  echo "FAIL"
  exit 1
fi
exec python3 "$(dirname "$0")/smokecheck.py" ab "$1" "$2"
