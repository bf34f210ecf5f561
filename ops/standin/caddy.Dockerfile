# Stand-in for the caddy image docker-compose.yml pins, for ops/compose_test.sh on a machine
# with no image registry: Debian's Caddy (2.6 on bookworm, which the deployment tests also
# use) on the stand-in base, with the official image's interface: /etc/caddy/Caddyfile,
# /data and /config, ports 80 and 443, and wget for the health check. Not for production.
FROM python:3.11-slim-bookworm
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends caddy wget >/dev/null \
 && rm -rf /var/lib/apt/lists/*
ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
VOLUME /config /data
EXPOSE 80 443 2019
WORKDIR /srv
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
