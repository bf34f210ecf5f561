#!/usr/bin/env bash
# Make python:3.11-slim-bookworm, the Dockerfile's base, without an image registry: a
# stand-in built from a Debian mirror, so the project's Dockerfile builds unchanged on a
# machine that can reach a Debian mirror and a Python package index but no registry.
#
#   ops/standin_base.sh            build the stand-in's tarball (cached), print its path
#   ops/standin_base.sh --import   also load it into the Docker engine (DOCKER_HOST) as
#                                  python:3.11-slim-bookworm, unless that tag is there already
#
# What it holds: `debootstrap --variant=minbase bookworm` plus Debian's python3 (3.11),
# python3-venv and ca-certificates; /usr/local is a virtual environment, so `python` and
# `pip` are /usr/local/bin/python and /usr/local/bin/pip and packages go to
# /usr/local/lib/python3.11/site-packages, as in the official image. PATH, LANG and CMD are
# the official image's. A policy-rc.d keeps packages installed into derived images from
# starting services, as in Debian's official images.
#
# Package index: the stand-in gets /etc/pip.conf with the host's index settings
# (index-url, extra-index-url, trusted-host, timeout and proxy from `pip config list`;
# local file:// indexes and anything carrying credentials are left out) and the host's CA
# bundle as its own, so `pip install` inside `docker build --network host` reaches the
# index the way the host does. STANDIN_PIP_CONF=FILE uses that file as /etc/pip.conf
# instead; STANDIN_CA_BUNDLE=FILE another CA bundle (PEM).
#
# Environment: DEBIAN_MIRROR [the host's Debian source, else http://deb.debian.org/debian],
# STANDIN_CACHE [var/image]. Needs root, debootstrap and Debian's archive keyring.
# The tarball's name carries a hash of everything that goes into it, so a changed pip
# configuration, CA bundle or mirror makes a new one; an unchanged one is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=python:3.11-slim-bookworm
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates
LABEL=org.sofiia-console.standin

import=0
case "${1:-}" in
  "") ;;
  --import) import=1 ;;
  *) echo "usage: ops/standin_base.sh [--import]" >&2; exit 2 ;;
esac

host_mirror() {
  local uri
  uri=$(grep -hs -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list \
    | grep -Eo 'https?://[^ ]+/debian/?( |$)' | head -n 1 | tr -d ' ' || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

pip_conf() {
  if [ -n "${STANDIN_PIP_CONF:-}" ]; then
    cat "$STANDIN_PIP_CONF"
    return
  fi
  echo "# The settings of the machine that built this stand-in base (ops/standin_base.sh)."
  echo "[global]"
  echo "cert = /etc/ssl/certs/ca-certificates.crt"
  local pip=() name value kept entries entry
  if command -v pip3 >/dev/null 2>&1; then pip=(pip3); elif python3 -m pip --version >/dev/null 2>&1; then pip=(python3 -m pip); fi
  [ "${#pip[@]}" -gt 0 ] || return 0
  # `pip config list` prints section.name='value', one per line, the files' settings merged;
  # the environment's (section :env:) win, as they do for pip itself.
  "${pip[@]}" config list 2>/dev/null \
    | sed -n -E "s/^(:env:|[^.]*)\.(index-url|extra-index-url|trusted-host|timeout|default-timeout|proxy)='(.*)'$/\1 \2 \3/p" \
    | sed -E 's/^([^ ]+) default-timeout /\1 timeout /' \
    | awk '{ from = $1; name = $2; sub(/^[^ ]+ [^ ]+ /, "");
             if (!(name in value) || from == ":env:") value[name] = $0 }
           END { for (name in value) print name, value[name] }' | sort \
    | while read -r name value; do
      kept=()
      read -r -a entries <<<"$value"
      for entry in "${entries[@]}"; do
        case "$entry" in
          *@*) echo "WARN pip: $name carries credentials; left out of the stand-in" >&2 ;;
          file:*|/*) ;;
          *) kept+=("$entry") ;;
        esac
      done
      if [ "${#kept[@]}" -gt 0 ]; then echo "$name = ${kept[*]}"; fi
    done
  return 0
}

ca_bundle() {
  local candidate
  for candidate in "${STANDIN_CA_BUNDLE:-}" "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [ -n "$candidate" ] && [ -s "$candidate" ]; then
      echo "$candidate"
      return
    fi
  done
}

mirror=${DEBIAN_MIRROR:-$(host_mirror)}
cache=${STANDIN_CACHE:-var/image}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip_conf >"$work/pip.conf"
bundle=$(ca_bundle)
{
  cat "$0"
  echo "$mirror $SUITE $PACKAGES"
  cat "$work/pip.conf"
  [ -z "$bundle" ] || cat "$bundle"
} >"$work/inputs"
key=$(sha256sum "$work/inputs" | cut -c1-12)
tarball="$cache/python-3.11-slim-bookworm-$key.tar"

if [ -s "$tarball" ]; then
  echo "PASS stand-in base: $tarball (cached)" >&2
else
  [ "$(id -u)" = 0 ] || { echo "FAIL stand-in base: debootstrap needs root" >&2; exit 1; }
  command -v debootstrap >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v debootstrap >/dev/null 2>&1 || {
    echo "FAIL stand-in base: debootstrap is not installed (apt-get install debootstrap)" >&2
    exit 1
  }
  export PATH="$PATH:/usr/sbin:/sbin"
  started=$(date +%s)
  mkdir -p "$cache"
  # On the cache's filesystem: the root file system is made, then packed, then dropped.
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$work" "$root"' EXIT
  if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    echo "FAIL stand-in base: debootstrap $SUITE from $mirror:" >&2
    tail -n 10 "$work/debootstrap.log" >&2
    exit 1
  fi
  chroot "$root" python3 -m venv /usr/local
  install -m 644 "$work/pip.conf" "$root/etc/pip.conf"
  [ -z "$bundle" ] || install -m 644 "$bundle" "$root/etc/ssl/certs/ca-certificates.crt"
  printf '#!/bin/sh\n# No service starts inside an image build.\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  # Slim: no package downloads, package lists (derived images run apt-get update, as with
  # the official image), documentation or manual pages.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
  tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  # Older stand-ins (other inputs) are not needed any more.
  find "$cache" -maxdepth 1 -name 'python-3.11-slim-bookworm-*.tar' ! -name "$(basename "$tarball")" -delete
  echo "PASS stand-in base: $tarball built from $mirror in $(($(date +%s) - started)) s" >&2
fi

if [ "$import" = 1 ]; then
  present=$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$TAG" 2>/dev/null || echo missing)
  if [ "$present" = "$key" ]; then
    echo "PASS stand-in base: $TAG already in the engine" >&2
  elif [ "$present" != missing ] && [ -z "$present" ]; then
    echo "PASS stand-in base: $TAG is a real image in the engine; used as it is" >&2
  else
    docker import \
      --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change "LABEL $LABEL=$key" \
      --change 'CMD ["python3"]' \
      "$tarball" "$TAG" >/dev/null
    echo "PASS stand-in base: $TAG imported" >&2
  fi
fi
echo "$tarball"
