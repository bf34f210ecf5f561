# Sofiia Console — developer entry points. `make run` starts the console, `make test` tests it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
.PHONY: run test lint typecheck pytest faults bench alerts tools multi multi-stop lock messages schema image-test compose-test clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

## Start the console on http://127.0.0.1:8000 with SQLite, in-memory backends and two dev nodes.
run: $(VENV)/.installed
	PYTHON=$(BIN)/python ops/dev_console.sh

## Two instances on PostgreSQL + Redis with two dev nodes (see ops/multi_instance.sh); `make multi-stop` stops them.
multi: $(VENV)/.installed
	PYTHON=$(BIN)/python DEV_NODES=$${DEV_NODES:-1} ops/multi_instance.sh start

multi-stop:
	PYTHON=$(BIN)/python ops/multi_instance.sh stop

## Lint, type-check, check the alerting rules and run the whole test suite (the database and backends come from the environment).
test: lint typecheck alerts pytest

## Style, formatting, the apps' import layers (pyproject.toml), migrations that match the models, and an
## OpenAPI description that generates without warnings and matches docs/openapi.yaml (`make schema` rewrites it).
SPECTACULAR := env -u DATABASE_URL DJANGO_DEBUG=1 $(BIN)/python manage.py spectacular --fail-on-warn --validate
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	env -u DATABASE_URL DJANGO_DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run --verbosity 0
	@schema=$$(mktemp) && trap 'rm -f "$$schema"' EXIT && $(SPECTACULAR) --file "$$schema" && \
	  diff -u docs/openapi.yaml "$$schema" || { echo "docs/openapi.yaml is out of date: run make schema" >&2; exit 1; }

## Regenerate docs/openapi.yaml, the committed OpenAPI description of the API.
schema: $(VENV)/.installed
	$(SPECTACULAR) --file docs/openapi.yaml

## Recompile the pinned, hashed requirements from requirements.in and requirements-dev.in (uv, for every Python 3.11 platform).
LOCK := $(BIN)/uv pip compile --quiet --native-tls --universal --python-version 3.11 --generate-hashes --no-header --no-emit-index-url
lock: $(VENV)/.installed
	$(LOCK) -o requirements.txt requirements.in
	$(LOCK) -o requirements-dev.txt requirements-dev.in

typecheck: $(VENV)/.installed
	$(BIN)/mypy .

# Tests delete their keys in Redis: keep them off the database a developer may be using.
pytest: export SOFIIA_REDIS_URL ?= redis://127.0.0.1:6379/15
pytest: $(VENV)/.installed tools
	$(BIN)/python -m pytest

## Faults injected under a send load, invariants checked after each (tests/faults, docs/reliability.md): PostgreSQL
## and Redis of their own restarted, a worker killed, failing nodes, a full Redis, a full disk (root). A few minutes.
faults: export SOFIIA_REDIS_URL ?= redis://127.0.0.1:6379/15
faults: $(VENV)/.installed tools
	env -u DATABASE_URL $(BIN)/python -m pytest -m faults tests/faults

## The benchmark suite (bench/suite.py; docs/performance.md): what each guarantee costs, as ratios of two
## things measured side by side, on SQLite and on PostgreSQL + Redis. Rewrites the table in docs/performance.md
## and bench/results/latest.json; exits non-zero when a target is missed by more than the noise margin, so it
## can gate a release. About 15 minutes on a quiet 2-core machine; not part of CI.
bench: $(VENV)/.installed
	@ops/bench_tools.sh >/dev/null
	@ops/local_services.sh
	$(BIN)/python bench/suite.py

## promtool's syntax check of the alerting rules and scrape config, and the rules' unit tests.
alerts:
	@promtool=$$(ops/debian_tool.sh promtool) && set -x && \
	  $$promtool check rules ops/prometheus/alerts.yml && \
	  $$promtool test rules ops/prometheus/alerts.test.yml && \
	  $$promtool check config ops/prometheus/prometheus.yml

# The deployment tests run Caddy and promtool, the browser tests Debian's Chromium and its
# chromedriver; fetch or install them when they are not there.
tools:
	@ops/debian_tool.sh promtool >/dev/null
	@ops/debian_tool.sh caddy >/dev/null
	@ops/browser_tools.sh >/dev/null

## Update the console's Ukrainian catalogue from its templates and code, and compile it (needs gettext).
messages: $(VENV)/.installed
	cd chats && DJANGO_DEBUG=1 DJANGO_SETTINGS_MODULE=sofiia.settings PYTHONPATH=.. ../$(BIN)/django-admin makemessages -l uk --no-obsolete
	cd chats && DJANGO_DEBUG=1 DJANGO_SETTINGS_MODULE=sofiia.settings PYTHONPATH=.. ../$(BIN)/django-admin compilemessages -l uk

## Build the image from the Dockerfile without a registry and check it running read-only (ops/image_test.sh; as root).
image-test: $(VENV)/.installed
	PYTHON=$(BIN)/python ops/image_test.sh

## Start docker-compose.yml whole on local stand-in images and check it through Caddy (ops/compose_test.sh; as root).
compose-test:
	ops/compose_test.sh

clean:
	rm -rf $(VENV) var
