# Stand-in for the postgres image docker-compose.yml pins, for ops/compose_test.sh on a
# machine with no image registry: Debian's PostgreSQL (15 on bookworm) on the stand-in base,
# with the official image's interface: POSTGRES_DB, POSTGRES_USER, POSTGRES_PASSWORD, data in
# /var/lib/postgresql/data, pg_isready, port 5432. Not for production.
FROM python:3.11-slim-bookworm
# The package's own cluster is not wanted: the entrypoint makes one in the volume.
RUN mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
