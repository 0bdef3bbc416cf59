SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test run-distributed system-deps lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	touch $@

## run: one process — web, Celery worker and beat — on SQLite under var/
run: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py ensure_admin
	$(BIN)/python manage.py seed_demo  # the DEMO project; CADENZA_DEMO=0 skips it
	$(BIN)/python manage.py serve --host $(HOST) --port $(PORT)

## test: install what is missing, start PostgreSQL and Redis, run every tier
test: system-deps $(VENV)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

system-deps:
	scripts/install-system-deps

## run-distributed: local PostgreSQL + Redis, then web, worker and beat as separate processes
run-distributed: system-deps $(VENV)/.installed
	scripts/run-distributed

## bench: the performance suite on loopback servers of its own (~17 min, all eight); docs/performance.md
bench: system-deps $(VENV)/.installed
	$(BIN)/python -m bench.run $(BENCH_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var
