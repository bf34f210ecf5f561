#!/usr/bin/env bash
# Print the path of a checking tool (promtool, caddy), fetching it when it is missing.
#
# A tool already on PATH is used as it is. Otherwise the binary is taken out of Debian's
# package into var/tools/bin/ without installing the package: installing `prometheus` would
# also start a Prometheus server through its init script and pull in its web assets, and
# the checks need neither. Both binaries are static Go programs, so the extracted file runs.
set -euo pipefail
cd "$(dirname "$0")/.."

tool=${1:-}
case "$tool" in
  promtool) package=prometheus ;;
  caddy) package=caddy ;;
  *) echo "usage: ops/debian_tool.sh promtool|caddy" >&2; exit 2 ;;
esac

if found=$(command -v "$tool"); then
  echo "$found"
  exit 0
fi

dest="$PWD/var/tools/bin/$tool"
if [ -x "$dest" ]; then
  echo "$dest"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt downloads as its own unprivileged user when it can
download() { (cd "$work" && apt-get download "$package") >"$work/apt.log" 2>&1; }
if ! download; then
  # A fresh machine may have no package lists yet.
  if [ "$(id -u)" = 0 ] && apt-get update -qq >"$work/apt.log" 2>&1 && download; then
    :
  else
    echo "FAIL: cannot download the Debian package $package for $tool:" >&2
    tail -n 5 "$work/apt.log" >&2
    exit 1
  fi
fi

dpkg-deb --fsys-tarfile "$work/$package"_*.deb | tar -x -C "$work" "./usr/bin/$tool"
mkdir -p "$(dirname "$dest")"
install -m 755 "$work/usr/bin/$tool" "$dest"
"$dest" --version >/dev/null 2>&1 || "$dest" version >/dev/null
echo "$dest"
