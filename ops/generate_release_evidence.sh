#!/usr/bin/env bash
# Write the release evidence an operator attaches to the go/no-go decision:
# release-evidence/<date>-<sha>.md with the git SHA and tag, versions, strict preflight,
# smoke results, the migration plan, a snapshot of the product's counters, the audit chain
# verification, the retention dry-run and the rollback target.
#
#   SOFIIA_TOKEN=… SOFIIA_AUDIT_KEY=… ops/generate_release_evidence.sh BASE [BASE_B]
#
# BASE is a running instance of this release (BASE_B a second one, for the Redis idempotency
# A/B smoke). Run it from the release's checkout. The manage.py steps need the release's
# environment: by default they run here with $PYTHON; RUN_PY runs them elsewhere, e.g.
# RUN_PY="docker compose exec -T console-a python" for the compose deployment.
# The document is always written; the exit status is 0 only for GO.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
  echo "usage: SOFIIA_TOKEN=... SOFIIA_AUDIT_KEY=... $0 BASE [BASE_B]" >&2
  exit 2
fi
BASE=$1
BASE_B=${2:-}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
read -ra run_py <<<"${RUN_PY:-$PYTHON}"
OUT_DIR=${OUT_DIR:-release-evidence}

sha=$(git rev-parse HEAD 2>/dev/null || echo "unknown")
short=$(git rev-parse --short=12 HEAD 2>/dev/null || echo "unknown")
tag=$(git describe --tags --exact-match HEAD 2>/dev/null || echo "untagged")
previous=$(git describe --tags --abbrev=0 HEAD^ 2>/dev/null || git rev-parse --short=12 HEAD^ 2>/dev/null || echo "none")
dirty=$([ -z "$(git status --porcelain 2>/dev/null)" ] && echo "clean" || echo "uncommitted changes present")
day=$(date -u +%Y-%m-%d)
mkdir -p "$OUT_DIR"
out="$OUT_DIR/$day-$short.md"

failed=()
section() {  # section TITLE GATE COMMAND... — run COMMAND, record its output; GATE=gate makes a failure NO-GO
  local title=$1 gate=$2 rc=0 output
  shift 2
  output=$("$@" 2>&1) || rc=$?
  {
    printf '\n## %s\n\n' "$title"
    printf 'Command: `%s` — exit %s\n\n```\n%s\n```\n' "$*" "$rc" "$output"
  } >>"$out"
  if [ "$rc" -ne 0 ] && [ "$gate" = "gate" ]; then failed+=("$title"); fi
  printf '%-4s  %s\n' "$([ "$rc" -eq 0 ] && echo PASS || echo FAIL)" "$title"
}

{
  printf '# Release evidence — Sofiia Console %s\n\n' "$tag"
  printf '| | |\n| --- | --- |\n'
  printf '| generated | %s |\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf '| git SHA | `%s` |\n' "$sha"
  printf '| tag | %s |\n' "$tag"
  printf '| work tree | %s |\n' "$dirty"
  printf '| instance | %s |\n' "$BASE"
  printf '| second instance | %s |\n' "${BASE_B:-none}"
  printf '| rollback target | %s |\n' "$previous"
} >"$out"

section "Versions" info "${run_py[@]}" -c '
import platform, sys
from importlib.metadata import version
from packaging.requirements import Requirement
import sofiia
print("sofiia-console", sofiia.__version__)
print("python", platform.python_version())
for line in open("requirements.in"):  # the direct dependencies; requirements.txt pins the rest
    if line.split("#")[0].strip():
        requirement = Requirement(line.split("#")[0].strip())
        if requirement.marker is None or requirement.marker.evaluate():
            print(requirement.name, version(requirement.name))
'
section "Preflight (strict)" gate "${run_py[@]}" manage.py preflight --strict
section "Smoke" gate ops/smoke.sh "$BASE"
if [ -n "$BASE_B" ]; then
  section "Redis idempotency A/B smoke" gate ops/redis_idempotency_smoke.sh "$BASE" "$BASE_B"
else
  printf '\n## Redis idempotency A/B smoke\n\nNot run: no second instance given.\n' >>"$out"
  failed+=("Redis idempotency A/B smoke (not run)")
  echo "FAIL  Redis idempotency A/B smoke (no BASE_B)"
fi
section "Migration plan" gate "${run_py[@]}" manage.py migrate --plan
section "Counters" gate "$PYTHON" ops/smokecheck.py counters "$BASE"
# Without the progress lines a long chain shows on stderr: the evidence keeps the verdict.
section "Audit chain verification" gate "${run_py[@]}" manage.py verify_audit --verbosity 0
section "Retention dry-run" gate "${run_py[@]}" manage.py prune_audit --dry-run

{
  printf '\n## Verdict\n\n'
  if [ "${#failed[@]}" -eq 0 ]; then
    printf '**GO** — every gate passed. Rollback target: %s.\n' "$previous"
  else
    printf '**NO-GO** — failed: %s.\n' "$(IFS=';'; echo "${failed[*]}" | sed 's/;/, /g')"
  fi
} >>"$out"

echo "Evidence written to $out"
if [ "${#failed[@]}" -eq 0 ]; then
  echo "GO"
  exit 0
fi
echo "NO-GO"
exit 1
