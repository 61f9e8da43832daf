# Solidarity: the Makefile targets are install, run, test, test-fast, bench and lint.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install browser run test test-fast bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Headless Chromium (Debian's package), for the test that renders the printable report.
browser:
	@test -x /usr/bin/chromium || { \
	  echo "installing Debian's chromium for the printable report's browser test"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null || \
	  { $$SUDO apt-get update -q >/dev/null && \
	    $$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null; }; }

## Start the whole system on its embedded defaults (NATS child, four services, SQLite in ./var).
run: install
	$(BIN)/solidarity up

## Install and run the whole test suite (every tier, real NATS, e2e; PostgreSQL when given).
test: install browser
	$(BIN)/pytest

## The fast tiers only: domain, application (SQLite, no NATS, no HTTP), shared units, deploy.
test-fast: install
	$(BIN)/pytest -q -m "not network and not e2e"

## Benchmarks against their raw baselines, in one run.
bench: install
	$(BIN)/python -m bench.pipeline

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
