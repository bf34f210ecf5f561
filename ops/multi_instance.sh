#!/usr/bin/env bash
# Two console instances under gunicorn on one PostgreSQL + Redis, without Docker: the
# production shape on one machine, for trying behaviour across instances (an idempotent
# send replayed on the other instance, rate limits shared through Redis).
#
#   ops/multi_instance.sh [start]   migrate, start instances a and b, wait until both are healthy
#   ops/multi_instance.sh status    one PASS/FAIL line per instance; exit 0 only if both are healthy
#   ops/multi_instance.sh stop      stop everything this script started
#
# Environment (defaults in brackets):
#   DATABASE_URL [postgres://postgres@127.0.0.1:5432/sofiia]  SOFIIA_REDIS_URL [redis://127.0.0.1:6379/0]
#   SOFIIA_IDEMPOTENCY_BACKEND, SOFIIA_RATE_LIMIT_BACKEND [redis]   DJANGO_DEBUG [0]
#   HOST [127.0.0.1]  PORT_A [8001]  PORT_B [8002]  GUNICORN_WORKERS [2]  MULTI_DIR [var/multi]
#   DEV_NODES=1       also start the two dev router nodes of the default SOFIIA_NODES (:9102, :9103)
#   COLLECTSTATIC=0   skip collectstatic (the API needs no static files)
#   STARTUP_TIMEOUT [60] seconds to wait for both instances
# Every other SOFIIA_*/DJANGO_* variable reaches both instances unchanged. Without
# DJANGO_SECRET_KEY(_FILE), both share a key generated once into MULTI_DIR/secret_key.
# Pid files and logs: MULTI_DIR/{a,b}.pid, MULTI_DIR/{a,b}.log; metrics: MULTI_DIR/{a,b}/metrics.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
HOST=${HOST:-127.0.0.1}
PORT_A=${PORT_A:-8001}
PORT_B=${PORT_B:-8002}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-60}
mkdir -p "${MULTI_DIR:-var/multi}"
MULTI_DIR=$(cd "${MULTI_DIR:-var/multi}" && pwd)
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/sofiia}
export SOFIIA_REDIS_URL=${SOFIIA_REDIS_URL:-redis://127.0.0.1:6379/0}
export SOFIIA_IDEMPOTENCY_BACKEND=${SOFIIA_IDEMPOTENCY_BACKEND:-redis}
export SOFIIA_RATE_LIMIT_BACKEND=${SOFIIA_RATE_LIMIT_BACKEND:-redis}
export DJANGO_DEBUG=${DJANGO_DEBUG:-0}
export GUNICORN_WORKERS=${GUNICORN_WORKERS:-2}
export PYTHONUNBUFFERED=1

INSTANCES=(a b)
DEV_NODE_PORTS=(NODA1:9102 NODA2:9103)

port_of() { if [ "$1" = a ]; then echo "$PORT_A"; else echo "$PORT_B"; fi; }
base_of() { echo "http://$HOST:$(port_of "$1")"; }
pid_of() { cat "$MULTI_DIR/$1.pid" 2>/dev/null || true; }
alive() { local pid; pid=$(pid_of "$1"); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
port_taken() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
healthy() { "$PYTHON" ops/healthcheck.py --timeout 2 "$(base_of "$1")/readyz" >/dev/null 2>&1; }

stop_one() {  # stop_one NAME LABEL
  local pid
  pid=$(pid_of "$1")
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$MULTI_DIR/$1.pid"
    echo "PASS $2 not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    # Each process was started as a session leader: its group holds the workers too.
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "WARN $2 (pid $pid) did not stop within 30 s and was killed"
  else
    echo "PASS $2 stopped (pid $pid)"
  fi
  rm -f "$MULTI_DIR/$1.pid"
}

do_stop() {
  local instance node
  for instance in "${INSTANCES[@]}"; do
    stop_one "$instance" "instance $instance"
    rm -rf "${MULTI_DIR:?}/$instance/metrics"
  done
  for node in "${DEV_NODE_PORTS[@]}"; do
    [ -f "$MULTI_DIR/node-${node%%:*}.pid" ] && stop_one "node-${node%%:*}" "dev node ${node%%:*}"
  done
  return 0
}

do_status() {
  local instance rc=0
  for instance in "${INSTANCES[@]}"; do
    if alive "$instance" && healthy "$instance"; then
      echo "PASS instance $instance healthy at $(base_of "$instance") (pid $(pid_of "$instance"))"
    elif alive "$instance"; then
      echo "FAIL instance $instance is running (pid $(pid_of "$instance")) but $(base_of "$instance")/readyz does not answer 200"
      rc=1
    else
      echo "FAIL instance $instance is not running"
      rc=1
    fi
  done
  return "$rc"
}

spawn() {  # spawn NAME LOG COMMAND... — detached in its own session, pid recorded
  local name=$1 log=$2
  shift 2
  # setsid: the instances outlive this script, and a Ctrl-C in its terminal does not reach them.
  setsid "$@" >"$log" 2>&1 </dev/null &
  echo $! >"$MULTI_DIR/$name.pid"
}

fail_start() {
  echo "FAIL $*"
  do_stop >/dev/null
  exit 1
}

secret_key() {
  if [ -n "${DJANGO_SECRET_KEY:-}" ] || [ -n "${DJANGO_SECRET_KEY_FILE:-}" ]; then return 0; fi
  if [ ! -s "$MULTI_DIR/secret_key" ]; then
    (umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(50))' >"$MULTI_DIR/secret_key")
  fi
  export DJANGO_SECRET_KEY_FILE="$MULTI_DIR/secret_key"
}

do_start() {
  local instance node name port deadline
  for instance in "${INSTANCES[@]}"; do
    if alive "$instance"; then
      echo "FAIL instance $instance is already running (pid $(pid_of "$instance")); run: $0 stop"
      exit 1
    fi
    rm -f "$MULTI_DIR/$instance.pid"
    if port_taken "$(port_of "$instance")"; then
      echo "FAIL port $(port_of "$instance") for instance $instance is already taken (set PORT_A/PORT_B)"
      exit 1
    fi
  done
  if [ "$PORT_A" = "$PORT_B" ]; then
    echo "FAIL PORT_A and PORT_B are both $PORT_A"
    exit 1
  fi
  secret_key

  if [ "${DEV_NODES:-0}" = 1 ]; then
    for node in "${DEV_NODE_PORTS[@]}"; do
      name=${node%%:*} port=${node##*:}
      port_taken "$port" && fail_start "port $port for dev node $name is already taken"
      spawn "node-$name" "$MULTI_DIR/node-$name.log" "$PYTHON" manage.py run_dev_router --port "$port" --name "$name"
      echo "PASS dev node $name started on http://127.0.0.1:$port"
    done
  fi

  if ! env -u PROMETHEUS_MULTIPROC_DIR "$PYTHON" manage.py migrate --noinput >"$MULTI_DIR/migrate.log" 2>&1; then
    fail_start "migrate: $(grep -v '^\s*$' "$MULTI_DIR/migrate.log" | tail -n 1)"
  fi
  echo "PASS migrate"
  if [ "$DJANGO_DEBUG" = 0 ] && [ "${COLLECTSTATIC:-1}" != 0 ]; then
    env -u PROMETHEUS_MULTIPROC_DIR "$PYTHON" manage.py collectstatic --noinput -v0 >"$MULTI_DIR/collectstatic.log" 2>&1 \
      || fail_start "collectstatic: $(tail -n 1 "$MULTI_DIR/collectstatic.log")"
    echo "PASS collectstatic"
  fi

  for instance in "${INSTANCES[@]}"; do
    # Each gunicorn master owns its metrics directory and empties it at start.
    PROMETHEUS_MULTIPROC_DIR="$MULTI_DIR/$instance/metrics" spawn "$instance" "$MULTI_DIR/$instance.log" \
      "$PYTHON" -m gunicorn -c gunicorn.conf.py sofiia.wsgi:application --bind "$HOST:$(port_of "$instance")"
  done

  deadline=$((SECONDS + STARTUP_TIMEOUT))
  for instance in "${INSTANCES[@]}"; do
    until healthy "$instance"; do
      alive "$instance" || fail_start "instance $instance exited: $(tail -n 3 "$MULTI_DIR/$instance.log")"
      [ "$SECONDS" -lt "$deadline" ] || fail_start "instance $instance not healthy within ${STARTUP_TIMEOUT} s (log: $MULTI_DIR/$instance.log)"
      sleep 0.2
    done
    echo "PASS instance $instance healthy at $(base_of "$instance") (pid $(pid_of "$instance"))"
  done
  echo "BASE_A=$(base_of a)"
  echo "BASE_B=$(base_of b)"
}

case "${1:-start}" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac
