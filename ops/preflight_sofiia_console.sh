#!/usr/bin/env bash
# Release preflight of this checkout's configuration (the environment of the console).
#   ops/preflight_sofiia_console.sh          fail on failures
#   STRICT=1 ops/preflight_sofiia_console.sh fail on warnings too (the release gate)
# One PASS/WARN/FAIL line per check; exits 0 only when the gate passes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
args=()
if [ "${STRICT:-0}" = "1" ]; then args+=(--strict); fi
exec "$PYTHON" manage.py preflight "${args[@]}"
