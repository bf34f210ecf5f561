# Sofiia Console — developer entry points. `make run` starts the console, `make test` tests it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
.PHONY: run test lint typecheck pytest clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

## Start the console on http://127.0.0.1:8000 with SQLite, in-memory backends and two dev nodes.
run: $(VENV)/.installed
	PYTHON=$(BIN)/python ops/dev_console.sh

## Lint, type-check and run the whole test suite (the database and backends come from the environment).
test: lint typecheck pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy .

# Tests delete their keys in Redis: keep them off the database a developer may be using.
pytest: export SOFIIA_REDIS_URL ?= redis://127.0.0.1:6379/15
pytest: $(VENV)/.installed
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) var
