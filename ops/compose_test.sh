#!/usr/bin/env bash
# Start docker-compose.yml whole and check it, with no image registry: `make compose-test`.
#
#   1. a Docker engine of its own (ops/docker_engine.sh), Compose v2 when the docker client
#      has it, else Debian's docker-compose (v1); what is missing is installed from Debian;
#   2. the pinned postgres, redis and caddy images: when the engine does not have them,
#      local stand-ins under those very names (ops/standin/: Debian's packages on the
#      stand-in base of ops/standin_base.sh, with the official images' interface);
#   3. `compose build` (the console image, built once by the migrate service, with the
#      build's network set to the host's) and `compose up -d` with ops/compose.env.example's
#      settings, free ports, fresh passwords, and one dev router node (an extra service);
#   4. checks: migrate exited 0; every long-running service healthy; the migration and
#      both instances run one image; ops/smoke.sh through Caddy (health, metrics, audit key,
#      a send to the dev node and its replay), and Caddy spread that send and its replay
#      over both instances; the A/B check on the instances' own ports (a send through A
#      replayed through B, one stored message);
#   5. `compose down -v`: no container, network or volume of the project is left, and the
#      engine stops.
#
# secrets/django_secret_key is made for the run when the checkout has none, and removed
# after. One PASS/FAIL line per check, the duration, a final PASS or FAIL; exit 0 only on PASS.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ops/docker_engine.sh
source ops/docker_engine.sh

started=$(date +%s)
project=sofiia-compose-test
failures=0
work=$(mktemp -d)
chmod 700 "$work"
compose=()
stack_up=0
made_secret=
made_secrets_dir=0

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
elapsed() { echo "$(($(date +%s) - started)) s"; }
stack() { "${compose[@]}" --env-file "$work/env" -p "$project" -f docker-compose.yml -f "$work/compose.test.yml" "$@"; }
container() { stack ps -q "$1"; }

finish() {
  local status=$?
  set +e
  if [ "$stack_up" = 1 ]; then
    if [ "$status" != 0 ] || [ "$failures" != 0 ]; then
      stack ps >"$work/ps.log" 2>&1 && cat "$work/ps.log"
      stack logs --no-color --tail 15 2>&1 | grep -v -e '"path": "/livez"' -e '"path": "/readyz"' | tail -n 60
    fi
    stack down -v --remove-orphans --timeout 20 >"$work/down.log" 2>&1 || cat "$work/down.log"
    left=$(
      docker ps -aq --filter "label=com.docker.compose.project=$project"
      docker network ls -q --filter "label=com.docker.compose.project=$project"
      docker volume ls -q --filter "label=com.docker.compose.project=$project"
    )
    if [ -z "$left" ]; then
      echo "PASS down -v: no container, network or volume of the project left"
    else
      echo "FAIL down -v: left behind: $(echo "$left" | tr '\n' ' ')"
      failures=$((failures + 1))
      [ "$status" != 0 ] || status=1
    fi
  fi
  [ -z "$made_secret" ] || rm -f "$made_secret"
  [ "$made_secrets_dir" = 0 ] || rmdir secrets 2>/dev/null
  engine_stop
  rm -rf "$work"
  if [ "$status" = 0 ]; then
    echo "PASS compose test in $(elapsed)"
  elif [ "$failures" = 0 ]; then
    echo "FAIL compose test stopped early (exit $status) after $(elapsed)"
  else
    echo "FAIL compose test: $failures check(s) failed, in $(elapsed)"
  fi
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

# --- the engine, compose, the images -------------------------------------------------------
need_debian_packages debootstrap=debootstrap
engine_start
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  need_debian_packages docker-compose=docker-compose
  compose=(docker-compose)
fi
pass "compose: $("${compose[@]}" version 2>/dev/null | head -n 1)"
ops/standin_base.sh --import >/dev/null

image_of() {  # the pinned image of a service in docker-compose.yml
  awk -v service="  $1:" '$0 == service { found = 1; next } found && $1 == "image:" { print $2; exit }' docker-compose.yml
}
for service in postgres redis caddy; do
  tag=$(image_of "$service")
  label=$(docker image inspect -f '{{ index .Config.Labels "org.sofiia-console.standin" }}' "$tag" 2>/dev/null || echo missing)
  if [ "$label" != missing ] && [ -z "$label" ]; then
    pass "image $tag: the real one, in the engine"
  elif docker build --network host -q -t "$tag" -f "ops/standin/$service.Dockerfile" ops/standin >"$work/build-$service.log" 2>&1; then
    pass "image $tag: local stand-in (ops/standin/$service.Dockerfile)"
  else
    fail "image $tag: the stand-in did not build:"
    tail -n 10 "$work/build-$service.log"
    exit 1
  fi
done

# --- settings: the example's, with fresh secrets, free ports and the dev node --------------
port_http=$(free_port)
port_https=$(free_port)
port_a=$(free_port)
port_b=$(free_port)
audit_key=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
sed -e '/^COMPOSE_PROJECT_NAME=/d' -e '/^SOFIIA_PUBLIC_HOST=/d' -e '/^SOFIIA_SITE_ADDRESS=/d' \
  -e '/^SOFIIA_HTTP_PORT=/d' -e '/^SOFIIA_HTTPS_PORT=/d' -e '/^SOFIIA_PORT_[AB]=/d' -e '/^POSTGRES_PASSWORD=/d' \
  -e '/^SOFIIA_AUDIT_KEYS=/d' -e '/^SOFIIA_NODES=/d' -e '/^SOFIIA_VERSION=/d' ops/compose.env.example >"$work/env"
cat >>"$work/env" <<EOF
SOFIIA_PUBLIC_HOST=console.test
SOFIIA_SITE_ADDRESS=:80
SOFIIA_HTTP_PORT=$port_http
SOFIIA_HTTPS_PORT=$port_https
SOFIIA_PORT_A=$port_a
SOFIIA_PORT_B=$port_b
POSTGRES_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
SOFIIA_AUDIT_KEYS=$audit_key
SOFIIA_NODES=NODA1=http://noda1:9102
SOFIIA_VERSION=compose-test
EOF
# The engine has no default bridge, so the build runs on the host's network; the dev node
# is the project's own dev router, on the backend network.
cat >"$work/compose.test.yml" <<'EOF'
services:
  migrate:
    build:
      network: host
  noda1:
    image: sofiia-console:${SOFIIA_VERSION:-dev}
    command: ["python", "manage.py", "run_dev_router", "--host", "0.0.0.0", "--port", "9102", "--name", "NODA1"]
    environment:
      DJANGO_DEBUG: "1"
    read_only: true
    networks:
      - backend
EOF
if [ ! -e secrets/django_secret_key ]; then
  [ -d secrets ] || { mkdir -m 700 secrets && made_secrets_dir=1; }
  python3 -c 'import secrets; print(secrets.token_urlsafe(50))' >secrets/django_secret_key
  chmod 644 secrets/django_secret_key  # read by the container's user
  made_secret=secrets/django_secret_key
fi

# --- build once, up ------------------------------------------------------------------------
build_started=$(date +%s)
if stack build >"$work/build.log" 2>&1; then
  pass "compose build: sofiia-console:compose-test in $(($(date +%s) - build_started)) s"
else
  fail "compose build:"
  tail -n 20 "$work/build.log"
  exit 1
fi
stack_up=1
up_started=$(date +%s)
if ! stack up -d >"$work/up.log" 2>&1; then
  fail "compose up:"
  tail -n 20 "$work/up.log"
  exit 1
fi
services=(postgres redis console-a console-b caddy)
for _ in $(seq 1 180); do
  waiting=0
  for service in "${services[@]}"; do
    id=$(container "$service")
    [ -n "$id" ] && [ "$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null)" = healthy ] || waiting=1
  done
  [ "$waiting" = 0 ] && break
  sleep 1
done
migrate=$(container migrate)
code=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$migrate")
if [ "$code" = "exited 0" ]; then
  pass "migrate: exited 0"
else
  fail "migrate: $code"
fi
for service in "${services[@]}"; do
  health=$(docker inspect -f '{{.State.Health.Status}}' "$(container "$service")" 2>/dev/null || echo "not running")
  if [ "$health" = healthy ]; then
    pass "$service: healthy"
  else
    fail "$service: $health"
  fi
done
[ "$failures" = 0 ] || exit 1
pass "up: the stack healthy $(($(date +%s) - up_started)) s after compose up"

images=$(for service in migrate console-a console-b; do docker inspect -f '{{.Image}}' "$(container "$service")"; done | sort -u)
if [ "$(echo "$images" | wc -l)" = 1 ]; then
  pass "one image: migrate, console-a and console-b run ${images:7:12}"
else
  fail "one image: the console services run $(echo "$images" | wc -l) different images"
fi

# --- through Caddy, and on each instance ---------------------------------------------------
token=$(stack exec -T console-a python manage.py create_operator compose-test --token 2>"$work/operator.log" | tail -n 1)
[ -n "$token" ] || { fail "operator: create_operator gave no token:"; tail -n 5 "$work/operator.log"; exit 1; }
export SOFIIA_TOKEN=$token SOFIIA_AUDIT_KEY=$audit_key
report() {  # report LABEL LOG: the smoke lines as checks of this test
  sed -e '$d' -e "s|^PASS  *|PASS $1: |" -e "s|^FAIL  *|FAIL $1: |" "$2"
}
if ops/smoke.sh "http://127.0.0.1:$port_http" >"$work/caddy.log" 2>&1; then
  report "through caddy" "$work/caddy.log"
else
  report "through caddy" "$work/caddy.log"
  failures=$((failures + 1))
fi
chat=$(sed -n -E 's/.*send — chat ([0-9]+),.*/\1/p' "$work/caddy.log")
served=()
for service in console-a console-b; do
  count=$(docker logs "$(container "$service")" 2>&1 | grep -c "\"path\": \"/api/chats/${chat:-none}/send\"" || true)
  [ "$count" -gt 0 ] && served+=("$service")
done
if [ "${#served[@]}" = 2 ]; then
  pass "through caddy: the send and its replay were served by console-a and console-b"
else
  fail "through caddy: the send and its replay were served by ${served[*]:-no instance} only"
fi
if ops/redis_idempotency_smoke.sh "http://127.0.0.1:$port_a" "http://127.0.0.1:$port_b" >"$work/ab.log" 2>&1; then
  report "a/b" "$work/ab.log"
else
  report "a/b" "$work/ab.log"
  failures=$((failures + 1))
fi

[ "$failures" = 0 ] || exit 1
