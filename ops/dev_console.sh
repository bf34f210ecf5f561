#!/usr/bin/env bash
# Start Sofiia Console for local development: SQLite under var/, in-memory backends, two dev
# router nodes (NODA1 on :9102, NODA2 on :9103) and a demo operator, served by gunicorn's
# gevent worker as in production — one worker, so the in-memory backends are exact.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export DJANGO_DEBUG=${DJANGO_DEBUG:-1}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
# The demo operator's console password (12 characters at least, like every password here).
DEMO_PASSWORD=${DEMO_PASSWORD:-sofiia-demo-console}

"$PYTHON" manage.py migrate --noinput -v0
"$PYTHON" manage.py collectstatic --noinput -v0
TOKEN=$("$PYTHON" manage.py create_operator demo --password "$DEMO_PASSWORD" --token --exist-ok | tail -n 1)

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
start_router() {  # start_router NAME PORT
  if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then
    echo "FAIL: port $2 for $1 is already taken (an earlier run still going?)" >&2
    exit 1
  fi
  "$PYTHON" manage.py run_dev_router --port "$2" --name "$1" >/dev/null &
  pids+=($!)
  for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "FAIL: dev router $1 did not start on port $2" >&2
  exit 1
}
start_router NODA1 9102
start_router NODA2 9103

cat <<BANNER

  Sofiia Console      http://$HOST:$PORT/console/   (log in as demo / $DEMO_PASSWORD)
  Dev router nodes    NODA1 http://127.0.0.1:9102   NODA2 http://127.0.0.1:9103
  Demo operator token $TOKEN

  export SOFIIA_TOKEN=$TOKEN

BANNER
GUNICORN_WORKERS=${GUNICORN_WORKERS:-1} "$PYTHON" -m gunicorn -c gunicorn.conf.py sofiia.wsgi:application --bind "$HOST:$PORT"
