#!/usr/bin/env bash
# Build the container image from the Dockerfile as it is, run it the way production does and
# check it: `make image-test`, and a step of .ci/run. Needs no image registry.
#
#   1. a Docker engine of its own (ops/docker_engine.sh; docker.io and debootstrap are
#      installed from Debian when missing), the base image made by ops/standin_base.sh
#      when the engine does not have it;
#   2. `docker build --network host` of the Dockerfile;
#   3. checks: without a secret key the image refuses to start (one clear line, non-zero
#      exit) and so is not in debug mode by default; migrate; the server, read-only, on the
#      host's network with GUNICORN_BIND on a port other than 8000, becomes healthy through
#      the image's own HEALTHCHECK; it runs as uid 10001, never root; a 404 is not Django's
#      debug page; nothing tried to write to the read-only file system; ops/smoke.sh
#      (health, metrics, audit key, one send to a dev router node and its idempotent replay).
#
# It runs against the local PostgreSQL (a database of its own, dropped at the end) and
# Redis, and leaves nothing running: the containers, the dev router and the engine stop on
# exit. Idempotency entries in Redis expire after SOFIIA_IDEMPOTENCY_TTL (300 s here).
#
# Environment (defaults in brackets): PG_URL [postgres://postgres@127.0.0.1:5432] (a
# server where it may create and drop a database), SOFIIA_REDIS_URL
# [redis://127.0.0.1:6379/14], IMAGE [sofiia-console:image-test], PYTHON [.venv/bin/python]
# for the dev router. One PASS/FAIL line per check, a final PASS or FAIL, exit 0 only on PASS.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ops/docker_engine.sh
source ops/docker_engine.sh

started=$(date +%s)
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
REDIS_URL=${SOFIIA_REDIS_URL:-redis://127.0.0.1:6379/14}
IMAGE=${IMAGE:-sofiia-console:image-test}
run_id=$$
database="sofiia_image_test_$run_id"
server="sofiia-image-test-$run_id"
refusal="sofiia-image-test-nosecret-$run_id"
failures=0
work=$(mktemp -d)
chmod 700 "$work"
router_pid=
database_made=0

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
elapsed() { echo "$(($(date +%s) - started)) s"; }

finish() {
  local status=$?
  set +e
  if [ "$ENGINE_OWNED" = 1 ] || [ -n "${DOCKER_HOST:-}" ]; then
    docker rm -f "$server" "$refusal" >/dev/null 2>&1
  fi
  if [ -n "$router_pid" ]; then
    kill -TERM "$router_pid" 2>/dev/null
    wait "$router_pid" 2>/dev/null
  fi
  if [ "$database_made" = 1 ]; then
    psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null
  fi
  engine_stop
  rm -rf "$work"
  if [ "$status" != 0 ] && [ "$failures" = 0 ]; then
    echo "FAIL image test stopped early (exit $status) after $(elapsed)"
  fi
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

# --- the engine, the base, the build ------------------------------------------------------
need_debian_packages debootstrap=debootstrap
engine_start
ops/standin_base.sh --import >/dev/null
build_started=$(date +%s)
if docker build --network host --build-arg "SOFIIA_VERSION=$(git rev-parse --short HEAD 2>/dev/null || echo dev)" \
  -t "$IMAGE" . >"$work/build.log" 2>&1; then
  pass "build: $IMAGE from the Dockerfile in $(($(date +%s) - build_started)) s"
else
  fail "build: docker build failed:"
  tail -n 20 "$work/build.log"
  exit 1
fi

# --- the services it runs against ---------------------------------------------------------
psql -q "$PG_URL/postgres" -c "CREATE DATABASE $database" >/dev/null
database_made=1
router_port=$(free_port)
env -u DATABASE_URL "$PYTHON" manage.py run_dev_router --port "$router_port" --name NODA1 >"$work/router.log" 2>&1 &
router_pid=$!
port=$(free_port)
python3 -c 'import secrets; print(secrets.token_urlsafe(50))' >"$work/secret_key"
chmod 644 "$work/secret_key"  # read by the container's user
audit_key=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')

# The production configuration, minus DJANGO_DEBUG: the image's default is what is tested.
run_env=(
  -e "DATABASE_URL=$PG_URL/$database"
  -e "SOFIIA_REDIS_URL=$REDIS_URL"
  -e SOFIIA_IDEMPOTENCY_BACKEND=redis
  -e SOFIIA_RATE_LIMIT_BACKEND=redis
  -e SOFIIA_IDEMPOTENCY_TTL=300
  -e "SOFIIA_NODES=NODA1=http://127.0.0.1:$router_port"
  -e "SOFIIA_AUDIT_KEYS=$audit_key"
  -e DJANGO_ALLOWED_HOSTS=127.0.0.1,localhost
  -e "GUNICORN_BIND=127.0.0.1:$port"
  -e GUNICORN_WORKERS=2
)
secret=(-v "$work/secret_key:/run/secrets/django_secret_key:ro" -e DJANGO_SECRET_KEY_FILE=/run/secrets/django_secret_key)
run_flags=(--network host --read-only --tmpfs /tmp)

# --- without a secret key it refuses to start ---------------------------------------------
docker run -d --name "$refusal" "${run_flags[@]}" "${run_env[@]}" "$IMAGE" >/dev/null
for _ in $(seq 1 60); do
  [ "$(docker inspect -f '{{.State.Running}}' "$refusal")" = false ] && break
  sleep 0.5
done
if [ "$(docker inspect -f '{{.State.Running}}' "$refusal")" = true ]; then
  fail "no secret key: the image started without one (debug mode by default, or the dev key)"
else
  code=$(docker inspect -f '{{.State.ExitCode}}' "$refusal")
  docker logs "$refusal" >"$work/refusal.log" 2>&1
  if [ "$code" != 0 ] && grep -q 'DJANGO_SECRET_KEY' "$work/refusal.log" && ! grep -q Traceback "$work/refusal.log"; then
    pass "no secret key: refused to start, exit $code: $(grep -m 1 DJANGO_SECRET_KEY "$work/refusal.log")"
  else
    fail "no secret key: exit $code, without one clear line naming DJANGO_SECRET_KEY:"
    tail -n 5 "$work/refusal.log"
  fi
fi
docker rm -f "$refusal" >/dev/null

# --- migrate, an operator, the server -----------------------------------------------------
if docker run --rm "${run_flags[@]}" "${run_env[@]}" "${secret[@]}" "$IMAGE" \
  python manage.py migrate --noinput >"$work/migrate.log" 2>&1; then
  pass "migrate: exit 0 (read-only, as the image's user)"
else
  fail "migrate:"
  tail -n 10 "$work/migrate.log"
  exit 1
fi
token=$(docker run --rm "${run_flags[@]}" "${run_env[@]}" "${secret[@]}" "$IMAGE" \
  python manage.py create_operator image-test --token 2>"$work/operator.log" | tail -n 1)

# The image's own HEALTHCHECK command and start period, asked every 2 s instead of 15 to
# save time: unhealthy 30 s + 3 failed probes after the start at the latest.
docker run -d --name "$server" "${run_flags[@]}" "${run_env[@]}" "${secret[@]}" --health-interval 2s "$IMAGE" >/dev/null
health=starting
for _ in $(seq 1 120); do
  health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$server")
  [ "$(docker inspect -f '{{.State.Running}}' "$server")" = true ] || { health=exited; break; }
  case "$health" in healthy | unhealthy | none) break ;; esac
  sleep 0.5
done
if [ "$health" = healthy ]; then
  pass "healthy: the image's HEALTHCHECK passed with GUNICORN_BIND=127.0.0.1:$port ($(docker inspect -f \
    '{{(index .State.Health.Log 0).Output}}' "$server" | head -n 1))"
else
  fail "healthy: the container is $health, not healthy:"
  docker inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$server" 2>/dev/null | tail -n 3
  docker logs "$server" 2>&1 | tail -n 10
  exit 1
fi

# --- unprivileged, not in debug mode, read-only without complaint -------------------------
uid=$(docker exec "$server" sh -c 'awk "/^Uid:/ { print \$2 }" /proc/1/status')
user=$(docker inspect -f '{{.Config.User}}' "$server")
if [ "$uid" = 10001 ] && [ "$user" = sofiia ]; then
  pass "unprivileged: gunicorn runs as uid $uid (USER $user)"
else
  fail "unprivileged: gunicorn runs as uid ${uid:-?} (USER ${user:-root})"
fi
status=$(python3 - "http://127.0.0.1:$port/no-such-page-$run_id" "$work/404.html" <<'EOF'
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
        status, body = response.status, response.read()
except urllib.error.HTTPError as error:
    status, body = error.code, error.read()
open(sys.argv[2], "wb").write(body)
print(status)
EOF
)
if [ "$status" = 404 ] && ! grep -q -e 'DEBUG = True' -e 'Using the URLconf' "$work/404.html"; then
  pass "not in debug mode: a 404 is the plain page, not Django's debug page"
else
  fail "not in debug mode: GET /no-such-page answered $status with Django's debug page"
fi
docker logs "$server" >"$work/server.log" 2>&1
if [ "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$server")" = true ] \
  && ! grep -q -i -e 'read-only file system' -e 'Control server error' -e Traceback "$work/server.log"; then
  pass "read-only: no write attempts or errors in the log"
else
  fail "read-only:"
  grep -i -e 'read-only file system' -e 'Control server error' -e Traceback "$work/server.log" | head -n 5
fi

# --- one send through it to the dev router, and its replay -------------------------------
if [ -z "$token" ]; then
  fail "operator: create_operator gave no token:"
  tail -n 5 "$work/operator.log"
elif SOFIIA_TOKEN=$token SOFIIA_AUDIT_KEY=$audit_key ops/smoke.sh "http://127.0.0.1:$port" >"$work/smoke.log" 2>&1; then
  sed -e '$d' -e 's/^PASS  */PASS smoke: /' "$work/smoke.log"
else
  sed -e '$d' -e 's/^PASS  */PASS smoke: /' -e 's/^FAIL  */FAIL smoke: /' "$work/smoke.log"
  failures=$((failures + 1))
fi

if [ "$failures" = 0 ]; then
  echo "PASS image test in $(elapsed)"
else
  echo "FAIL image test: $failures check(s) failed, in $(elapsed)"
  exit 1
fi
