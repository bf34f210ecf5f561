# Stand-in for the redis image docker-compose.yml pins, for ops/compose_test.sh on a machine
# with no image registry: Debian's Redis (7.0 on bookworm) on the stand-in base, with the
# official image's interface: `redis-server ARGS` as the redis user in /data, reachable
# from other containers (protected mode off, as there), redis-cli. Not for production.
FROM python:3.11-slim-bookworm
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
