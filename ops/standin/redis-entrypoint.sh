#!/bin/sh
# The official redis image's start-up: redis-server runs as the redis user, listening on all
# addresses with protected mode off (the container's network is the boundary).
set -eu
if [ "$1" = redis-server ]; then
  shift
  chown -R redis:redis /data
  exec setpriv --reuid=redis --regid=redis --init-groups redis-server --bind '* -::*' --protected-mode no "$@"
fi
exec "$@"
