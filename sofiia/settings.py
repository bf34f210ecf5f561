"""Sofiia Console settings, read from the environment (see README.md for the table).

A malformed variable raises ``ImproperlyConfigured`` naming it; ``manage.py``,
``wsgi.py`` and ``gunicorn.conf.py`` turn that into a single line and a non-zero exit.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from sofiia.lib.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_rate,
    env_secret,
    env_str,
    parse_keyed_secrets,
    parse_nodes,
)

django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

# --- Core Django -------------------------------------------------------------------------

DEV_SECRET_KEY = "django-insecure-sofiia-dev-only-never-use-in-production"  # noqa: S105

DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY: required when DJANGO_DEBUG is off")
    SECRET_KEY = DEV_SECRET_KEY
# Keys that still verify signatures (sessions, cursors) but sign nothing new: rotation
# without logging everyone out (docs/runbooks/secrets-rotation.md).
SECRET_KEY_FALLBACKS = [
    key.strip() for key in (env_secret("DJANGO_SECRET_KEY_FALLBACKS") or "").split(",") if key.strip()
]
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "sofiia",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "audit",
    "ratelimit",
    "nodes",
    "operators",
    "chats",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "sofiia.lib.request_id.RequestIdMiddleware",
    # Before anything that touches the database: see sofiia/lib/request_body.py.
    "sofiia.lib.request_body.RequestBodyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "sofiia.lib.page_security.PageSecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "sofiia.lib.errors.ApiJsonErrorsMiddleware",
    # Before the session, CSRF and authentication: a method the URL does not take is a 405.
    "sofiia.lib.methods.MethodGateMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "sofiia.lib.locale.PageLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Both set request.user lazily: the first to ask (inside the send gate, for a send) looks it up.
    "operators.auth.BearerTokenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # django-prometheus' after-middleware, labelling known methods only.
    "sofiia.lib.request_metrics.RequestMetricsMiddleware",
]

ROOT_URLCONF = "sofiia.urls"
WSGI_APPLICATION = "sofiia.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'sofiia.sqlite3'}")


# Servers pool their PostgreSQL connections (gunicorn.conf.py turns this on); a management
# command connects directly, so an unreachable database fails it at once.
SOFIIA_DB_POOL = env_bool("SOFIIA_DB_POOL", False)
SOFIIA_DB_POOL_MAX = env_int("SOFIIA_DB_POOL_MAX", 20, minimum=1)
SOFIIA_DB_POOL_TIMEOUT = env_float("SOFIIA_DB_POOL_TIMEOUT", 5.0)
# Seconds a send keeps trying to store a node's reply (or a failure) while the database is
# away before it answers 503; a PostgreSQL restart takes a few (chats.services).
SOFIIA_DB_RETRY_SECONDS = env_float("SOFIIA_DB_RETRY_SECONDS", 10.0)


def _database(url: str) -> dict[str, Any]:
    # Connections are not kept per thread (CONN_MAX_AGE 0): under gevent a "thread" is one
    # request's greenlet. In a server, PostgreSQL connections come from a pool per worker
    # instead, and a send gives its connection back while the node thinks
    # (chats.services.message_send).
    try:
        config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=0, conn_health_checks=True))
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(f"DATABASE_URL: cannot parse it ({exc})") from None
    engine = config.get("ENGINE", "")
    if engine == "django.db.backends.sqlite3":
        if not config.get("NAME"):
            raise ImproperlyConfigured("DATABASE_URL: an SQLite URL needs a file path")
        Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        # Django's backend, except that waiting for the write lock lets other greenlets run.
        config["ENGINE"] = "sofiia.db.sqlite3"
        config["OPTIONS"] = {
            # IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue for it
            # instead of failing a lock upgrade with "database is locked".
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    elif engine == "django.db.backends.postgresql":
        options = config.setdefault("OPTIONS", {})
        options.setdefault("connect_timeout", 5)
        options.setdefault("application_name", "sofiia-console")
        if SOFIIA_DB_POOL:
            # conn_health_checks (above) makes Django's pool check each connection as it is
            # handed out: after a PostgreSQL restart a request gets a live connection, not a
            # stale one.
            options["pool"] = {
                "min_size": min(2, SOFIIA_DB_POOL_MAX),
                "max_size": SOFIIA_DB_POOL_MAX,
                # How long a request waits for a free connection before it fails.
                "timeout": SOFIIA_DB_POOL_TIMEOUT,
            }
    else:
        raise ImproperlyConfigured(f"DATABASE_URL: only sqlite:// and postgres:// are supported, got {engine!r}")
    return config


DATABASES = {"default": _database(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Caches and backends -----------------------------------------------------------------

BACKENDS = ("inmemory", "redis")


def _redis_url(name: str, url: str) -> str:
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(f"{name}: expected a redis:// URL, got {url!r}")
    return url


SOFIIA_REDIS_URL = _redis_url("SOFIIA_REDIS_URL", env_str("SOFIIA_REDIS_URL", "redis://127.0.0.1:6379/0"))
# Idempotency records and rate-limit windows may live on Redis servers of their own: Redis
# evicts across all of a server's databases, so only separate servers (or a server that
# evicts nothing) keep one from evicting the other (docs/reliability.md, "Redis memory").
SOFIIA_IDEMPOTENCY_REDIS_URL = _redis_url(
    "SOFIIA_IDEMPOTENCY_REDIS_URL", env_str("SOFIIA_IDEMPOTENCY_REDIS_URL", SOFIIA_REDIS_URL)
)
SOFIIA_RATE_LIMIT_REDIS_URL = _redis_url(
    "SOFIIA_RATE_LIMIT_REDIS_URL", env_str("SOFIIA_RATE_LIMIT_REDIS_URL", SOFIIA_REDIS_URL)
)
SOFIIA_IDEMPOTENCY_BACKEND = env_choice("SOFIIA_IDEMPOTENCY_BACKEND", "inmemory", BACKENDS)
SOFIIA_RATE_LIMIT_BACKEND = env_choice("SOFIIA_RATE_LIMIT_BACKEND", "inmemory", BACKENDS)


IDEMPOTENCY_CACHE_PREFIX = "sofiia-idem"
RATE_LIMIT_CACHE_PREFIX = "sofiia-rl"


def backend_cache(backend: str, prefix: str, location: str | None = None) -> dict[str, Any]:
    if backend == "redis":
        return {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": location or SOFIIA_REDIS_URL,
            "KEY_PREFIX": prefix,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                # Fail fast: a send must not hang on an unreachable Redis.
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
            },
        }
    return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": prefix}


CACHES = {
    "default": backend_cache("inmemory", "sofiia"),
    "idempotency": backend_cache(SOFIIA_IDEMPOTENCY_BACKEND, IDEMPOTENCY_CACHE_PREFIX, SOFIIA_IDEMPOTENCY_REDIS_URL),
    "ratelimit": backend_cache(SOFIIA_RATE_LIMIT_BACKEND, RATE_LIMIT_CACHE_PREFIX, SOFIIA_RATE_LIMIT_REDIS_URL),
}

# --- Product settings --------------------------------------------------------------------

SOFIIA_NODES = parse_nodes(
    "SOFIIA_NODES", env_str("SOFIIA_NODES", "NODA1=http://127.0.0.1:9102,NODA2=http://127.0.0.1:9103")
)
SOFIIA_DEFAULT_NODE = env_str("SOFIIA_DEFAULT_NODE", next(iter(SOFIIA_NODES)))
if SOFIIA_DEFAULT_NODE not in SOFIIA_NODES:
    raise ImproperlyConfigured(
        f"SOFIIA_DEFAULT_NODE: {SOFIIA_DEFAULT_NODE!r} is not one of SOFIIA_NODES ({', '.join(SOFIIA_NODES)})"
    )
SOFIIA_INFER_TIMEOUT = env_float("SOFIIA_INFER_TIMEOUT", 30.0)
SOFIIA_NODE_PROBE_TIMEOUT = 1.0
# Sends waiting on one node's answer at once, all workers of an instance together; past it
# a send to that node is answered 503 node_busy (nodes.bulkhead).
SOFIIA_NODE_MAX_INFLIGHT = env_int("SOFIIA_NODE_MAX_INFLIGHT", 500, minimum=1)
# Sends running their own (CPU-bound) steps at once per worker; the rest wait their turn,
# so health checks and page loads never queue behind a burst of sends (sofiia.lib.gate).
SOFIIA_SENDS_ACTIVE_MAX = env_int("SOFIIA_SENDS_ACTIVE_MAX", 8, minimum=1)
# Made by the gunicorn master and shared by its workers (gunicorn.conf.py); a process
# started any other way makes its own.
SOFIIA_INSTANCE_DIR = env_str("SOFIIA_INSTANCE_DIR", "")
SOFIIA_NODE_STATUS_CACHE_SECONDS = 5
# A node is an untrusted upstream: its answers are cut off past this many bytes.
SOFIIA_NODE_MAX_RESPONSE_BYTES = env_int("SOFIIA_NODE_MAX_RESPONSE_BYTES", 1024 * 1024, minimum=1024)
# What a send carries of its chat: earlier exchanges (a chat's default) and their text budget.
SOFIIA_CONTEXT_TURNS = env_int("SOFIIA_CONTEXT_TURNS", 10, minimum=0, maximum=50)
SOFIIA_CONTEXT_MAX_CHARS = env_int("SOFIIA_CONTEXT_MAX_CHARS", 32000, minimum=0)

SOFIIA_RATE_LIMIT_CHAT = env_rate("SOFIIA_RATE_LIMIT_CHAT", "30/60")
SOFIIA_RATE_LIMIT_OPERATOR = env_rate("SOFIIA_RATE_LIMIT_OPERATOR", "120/60")
SOFIIA_RATE_LIMIT_CHAT_CREATE = env_rate("SOFIIA_RATE_LIMIT_CHAT_CREATE", "60/3600")
# Reads of the audit trail (/api/audit, the admin's audit views), per reader and per client
# address: each one served is recorded, so a flood of reads is refused rather than recorded.
SOFIIA_RATE_LIMIT_AUDIT_READ = env_rate("SOFIIA_RATE_LIMIT_AUDIT_READ", "60/60")
SOFIIA_RATE_LIMIT_CHAT_CHANGE = env_rate("SOFIIA_RATE_LIMIT_CHAT_CHANGE", "30/60")
# Console and admin logins: failed attempts per user from one client address (the name is
# kept from when it counted per user alone), per client address, and per user from all
# addresses together (a high ceiling against distributed guessing); see operators/login.py.
SOFIIA_LOGIN_LIMIT_USERNAME = env_rate("SOFIIA_LOGIN_LIMIT_USERNAME", "5/900")
SOFIIA_LOGIN_LIMIT_ADDRESS = env_rate("SOFIIA_LOGIN_LIMIT_ADDRESS", "30/900")
SOFIIA_LOGIN_LIMIT_USER_CEILING = env_rate("SOFIIA_LOGIN_LIMIT_USER_CEILING", "100/900")
# Off by default: a Redis that is down or full must not turn the limits off unnoticed.
SOFIIA_RATE_LIMIT_FAIL_OPEN = env_bool("SOFIIA_RATE_LIMIT_FAIL_OPEN", False)
SOFIIA_IDEMPOTENCY_TTL = env_int("SOFIIA_IDEMPOTENCY_TTL", 86400, minimum=1)

SOFIIA_AUDIT_KEYS = env_list("SOFIIA_AUDIT_KEYS", [])
# The HMAC keys of the audit chain (audit/chain_keys.py), and the Ed25519 keys of its signed
# checkpoints (audit/checkpoints.py): secrets the database never sees.
SOFIIA_AUDIT_CHAIN_KEYS = parse_keyed_secrets("SOFIIA_AUDIT_CHAIN_KEY", env_secret("SOFIIA_AUDIT_CHAIN_KEY") or "")
SOFIIA_AUDIT_SIGNING_KEY = env_secret("SOFIIA_AUDIT_SIGNING_KEY") or ""
SOFIIA_AUDIT_VERIFY_KEY = env_secret("SOFIIA_AUDIT_VERIFY_KEY") or ""
SOFIIA_TOKEN_TTL_DAYS = env_int("SOFIIA_TOKEN_TTL_DAYS", 90, minimum=1)
SOFIIA_AUDIT_RETENTION_DAYS = env_int("SOFIIA_AUDIT_RETENTION_DAYS", 90, minimum=1)
SOFIIA_TRUSTED_PROXIES = env_list("SOFIIA_TRUSTED_PROXIES", [])
for _proxy in SOFIIA_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"SOFIIA_TRUSTED_PROXIES: {_proxy!r} is not an address or network") from None

SOFIIA_VERSION = env_str("SOFIIA_VERSION", "")

# --- API ---------------------------------------------------------------------------------

REST_FRAMEWORK = {
    # The user the authentication middlewares put on the request: one lookup per request.
    "DEFAULT_AUTHENTICATION_CLASSES": ["operators.auth.OperatorAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["operators.auth.IsOperator"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["sofiia.lib.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "sofiia.lib.errors.api_exception_handler",
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%S.%fZ",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_SCHEMA_CLASS": "sofiia.openapi.AutoSchema",
}

# The OpenAPI description (/api/schema/, docs/openapi.yaml) and its browsable docs
# (/api/docs/, Swagger UI served from this instance's static files: no CDN).
SPECTACULAR_SETTINGS = {
    "TITLE": "Sofiia Console API",
    "DESCRIPTION": (
        "Operators' API of Sofiia Console: chats with AI agents on router nodes, idempotent sends, "
        'the audit trail. Every error is `{"error": "<code>", "detail": "<text>", ...}`.'
    ),
    "VERSION": "1",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The description holds no data: it is public, like docs/openapi.yaml in the repository.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api",
    "SORT_OPERATIONS": True,
    "ENUM_NAME_OVERRIDES": {
        "MessageRoleEnum": "chats.models.Message.Role",
        "MessageStatusEnum": "chats.models.Message.Status",
    },
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "auditKey": {
                "type": "apiKey",
                "in": "header",
                "name": "X-Audit-Key",
                "description": "One of `SOFIIA_AUDIT_KEYS`; the only way into `/api/audit`.",
            }
        }
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "sofiia.openapi.add_health_and_request_ids",
    ],
}

# A send body is at most 16,000 characters; 1 MiB leaves room for JSON escaping.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
# Seconds a client has to send a request's whole body (sofiia.lib.request_body).
SOFIIA_REQUEST_BODY_TIMEOUT = env_float("SOFIIA_REQUEST_BODY_TIMEOUT", 15.0)

# --- Security ----------------------------------------------------------------------------

SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
# TLS ends at the proxy, which sets X-Forwarded-Proto for the requests it forwards.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^api/health$", r"^livez$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
if not SECURE_SSL_REDIRECT:
    # The documented deployment terminates TLS at the proxy (ops/Caddyfile), which also
    # redirects HTTP to HTTPS and sends HSTS; the app serves plain HTTP on the inside.
    SILENCED_SYSTEM_CHECKS = ["security.W004", "security.W008"]
# Console cookies travel over HTTPS only, except in development.
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Every HTML page the app serves (sofiia.lib.page_security): only its own script, styles and
# images, no inline code. The admin's pages need nothing more; the API's docs (Swagger UI)
# also draw icons from data: URIs in their stylesheet.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
CSP_PREFIX_POLICIES = {
    "/api/docs/": CONTENT_SECURITY_POLICY.replace("img-src 'self';", "img-src 'self' data:;"),
}
# Console pages hold transcripts: never kept in the browser's cache (Back after logout).
NO_STORE_PREFIXES = ("/console/",)

# Console and admin passwords (create_operator --password and the admin's user forms): 12
# characters at least, and not what a spraying list holds (operators/passwords.py).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "operators.passwords.PredictablePasswordValidator"},
]

LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:chat-list"
LOGOUT_REDIRECT_URL = "console:login"

# --- I18N, static ------------------------------------------------------------------------

LANGUAGE_CODE = "en"
# The console's own words; messages are never translated (sofiia.lib.locale).
LANGUAGES = [("en", "English"), ("uk", "Українська")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # collectstatic fills it; WhiteNoise serves it
WHITENOISE_USE_FINDERS = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed names served as immutable (see sofiia.lib.staticfiles).
    "staticfiles": {"BACKEND": "sofiia.lib.staticfiles.HashedStaticFilesStorage"},
}

# --- Logging: one JSON object per line on stdout -----------------------------------------

LOG_LEVEL = env_choice("SOFIIA_LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper()

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "sofiia.lib.logging.RequestIdFilter"},
        "django_request": {"()": "sofiia.lib.logging.DjangoRequestFilter"},
    },
    "formatters": {"json": {"()": "sofiia.lib.logging.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        # One line per request is sofiia.access's: Django's own 4xx/5xx lines are dropped, and
        # only crashes (with their traceback) are kept. Under /api/ the error middleware logs
        # those itself, with context.
        "django.request": {
            "handlers": ["stdout"],
            "level": "ERROR",
            "filters": ["django_request"],
            "propagate": False,
        },
        # runserver's request lines would duplicate the sofiia.access lines.
        "django.server": {"handlers": ["stdout"], "level": "ERROR", "propagate": False},
    },
}
