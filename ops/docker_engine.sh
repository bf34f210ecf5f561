# Sourced by ops/image_test.sh and ops/compose_test.sh (bash, set -euo pipefail): a Docker
# engine of the caller's own, started for one test and stopped after it.
#
#   need_debian_packages COMMAND=PACKAGE...   install the Debian packages of missing commands
#   engine_start                              start dockerd; exports DOCKER_HOST
#   engine_stop                               stop it (call from the caller's EXIT trap)
#
# No systemd is needed and the host's network is left alone: --iptables=false and
# --bridge=none (containers use the host's network, or networks that compose creates and
# removes). The engine's socket, pid file and run state live in a directory of its own, so
# it never meets a Docker engine the machine already runs. Its data root is
# var/docker/ (DOCKER_DATA_ROOT): images and build layers stay there between runs, which
# is what makes a second run fast; `make clean` removes it. One engine per data root at a
# time (a lock file), so two runs in one checkout wait for each other.
#
# With DOCKER_HOST already set, that engine is used as it is and neither started nor stopped.

ENGINE_PID=
ENGINE_RUN_DIR=
ENGINE_OWNED=0

need_debian_packages() {  # need_debian_packages COMMAND=PACKAGE...
  local pair missing=()
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "${pair%%=*}" >/dev/null 2>&1 \
      || missing+=("${pair#*=}")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "FAIL install: ${missing[*]} missing and only root may install them (apt-get install ${missing[*]})" >&2
    return 1
  fi
  echo "installing from Debian: ${missing[*]}"
  local log
  log=$(mktemp)
  # The packages' own service start is skipped where policy-rc.d says so; the engine is
  # started below either way, for this run only.
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    # A fresh machine may have no package lists yet.
    if ! { apt-get update -qq >>"$log" 2>&1 \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$log" 2>&1; }; then
      echo "FAIL install: apt-get install ${missing[*]}:" >&2
      tail -n 5 "$log" >&2
      rm -f "$log"
      return 1
    fi
  fi
  rm -f "$log"
  export PATH="$PATH:/usr/sbin:/sbin"
}

engine_start() {
  # A build must not depend on a client plugin (buildx) this machine may not have.
  export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
  if [ -n "${DOCKER_HOST:-}" ]; then
    docker version >/dev/null || { echo "FAIL engine: DOCKER_HOST=$DOCKER_HOST does not answer" >&2; return 1; }
    echo "using the Docker engine at DOCKER_HOST"
    return 0
  fi
  [ "$(id -u)" = 0 ] || { echo "FAIL engine: starting dockerd needs root (or set DOCKER_HOST)" >&2; return 1; }
  need_debian_packages dockerd=docker.io docker=docker.io
  local data_root=${DOCKER_DATA_ROOT:-$PWD/var/docker}
  mkdir -p "$data_root"
  exec 9>"$data_root.lock"
  if ! flock -n 9; then
    echo "waiting for another run on $data_root to finish"
    flock 9
  fi
  # Short and private: a unix socket path may not exceed 107 bytes.
  ENGINE_RUN_DIR=$(mktemp -d /tmp/sofiia-docker.XXXXXX)
  setsid dockerd \
    --iptables=false --ip-masq=false --ip-forward=false --bridge=none \
    --data-root "$data_root" \
    --exec-root "$ENGINE_RUN_DIR/exec" \
    --pidfile "$ENGINE_RUN_DIR/dockerd.pid" \
    --host "unix://$ENGINE_RUN_DIR/docker.sock" \
    >"$ENGINE_RUN_DIR/dockerd.log" 2>&1 </dev/null &
  ENGINE_PID=$!
  ENGINE_OWNED=1
  export DOCKER_HOST="unix://$ENGINE_RUN_DIR/docker.sock"
  local _
  for _ in $(seq 1 60); do
    if docker version >/dev/null 2>&1; then
      echo "PASS engine: dockerd $(docker version -f '{{.Server.Version}}') started (pid $ENGINE_PID)"
      return 0
    fi
    kill -0 "$ENGINE_PID" 2>/dev/null || break
    sleep 0.5
  done
  echo "FAIL engine: dockerd did not start:" >&2
  tail -n 20 "$ENGINE_RUN_DIR/dockerd.log" >&2
  return 1
}

engine_stop() {
  [ "$ENGINE_OWNED" = 1 ] || return 0
  ENGINE_OWNED=0
  # Images nobody can name any more (an earlier build of a tag) only take space.
  docker image prune -f >/dev/null 2>&1 || true
  if kill -0 "$ENGINE_PID" 2>/dev/null; then
    kill -TERM "$ENGINE_PID" 2>/dev/null || true
    local _
    for _ in $(seq 1 60); do
      kill -0 "$ENGINE_PID" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$ENGINE_PID" 2>/dev/null; then
      echo "WARN engine: dockerd (pid $ENGINE_PID) did not stop in 30 s; killed" >&2
      kill -KILL "$ENGINE_PID" 2>/dev/null || true
    fi
  fi
  wait "$ENGINE_PID" 2>/dev/null || true
  # dockerd leaves the host's network namespace bound under its exec root.
  local mount
  awk -v dir="$ENGINE_RUN_DIR/" 'index($2, dir) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r mount; do
    umount "$mount" 2>/dev/null || umount -l "$mount" 2>/dev/null || true
  done
  rm -rf "$ENGINE_RUN_DIR"
  unset DOCKER_HOST
}
