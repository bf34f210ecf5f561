# Sofiia Console: gunicorn (gunicorn.conf.py, gevent workers) on port 8000, as an unprivileged user, with the
# pinned runtime requirements only. docker-compose.yml runs it behind Caddy.
FROM python:3.11-slim-bookworm

# Production unless told otherwise: debug off, so without a secret key (from the environment
# or a *_FILE secret) the container refuses to start instead of serving with the dev key.
ENV DJANGO_DEBUG=0 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=sofiia.settings \
    GUNICORN_BIND=0.0.0.0:8000

RUN groupadd --system --gid 10001 sofiia \
 && useradd --system --uid 10001 --gid sofiia --home-dir /app --no-create-home --shell /usr/sbin/nologin sofiia

WORKDIR /app
# Requirements first, so a code change does not reinstall them.
COPY requirements.txt ./
RUN pip install --no-compile -r requirements.txt

COPY . .
# The static files are part of the image (WhiteNoise serves them). collectstatic needs no
# secret; debug mode only spares it the production secret-key check.
RUN DJANGO_DEBUG=1 python manage.py collectstatic --noinput -v0 \
 && python -m compileall -q sofiia chats audit ratelimit

# /api/health reports it; pass the release tag or SHA: --build-arg SOFIIA_VERSION=$(git rev-parse --short HEAD)
ARG SOFIIA_VERSION=""
ENV SOFIIA_VERSION=${SOFIIA_VERSION}

USER sofiia
EXPOSE 8000
# Liveness (/livez) at the address gunicorn listens on (GUNICORN_BIND): slow nodes or a
# database outage never make the container unhealthy; the proxy routes on /readyz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "ops/healthcheck.py"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "sofiia.wsgi:application"]
