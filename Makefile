# retention-worker: developer tasks. Needs GNU make and python3 (3.11 or newer); the first
# target that needs the tools creates $(VENV) and installs the project with its dev extra.

VENV ?= .venv
PYTHON ?= python3
PYTEST_ARGS ?=
RETENTION_HTTP_PORT ?= 9464
export RETENTION_HTTP_PORT

BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo run test lint bench clean distclean

help: ## List the targets
	@echo "retention-worker make targets:"
	@grep -E '^[a-z][a-z-]*:.*## ' $(firstword $(MAKEFILE_LIST)) \
		| awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'
	@echo "Variables: VENV=$(VENV) PYTHON=$(PYTHON) PYTEST_ARGS='$(PYTEST_ARGS)'" \
		"RETENTION_HTTP_PORT=$(RETENTION_HTTP_PORT)"

install: $(INSTALLED) ## Create the virtualenv and install the project with its dev tools

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "error: $(PYTHON) must be Python 3.11 or newer (set PYTHON=...)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev]'
	@touch $@

demo: $(INSTALLED) ## Build the demo: databases with synthetic data under .demo/
	$(BIN)/retention-worker demo

run: $(INSTALLED) ## Run the worker against the demo (metrics on RETENTION_HTTP_PORT)
	$(BIN)/retention-worker --env-file .demo/demo.env run

test: $(INSTALLED) ## Run the tests (extra pytest options: PYTEST_ARGS='-k periods')
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(INSTALLED) ## ruff check, ruff format --check and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy worker connectors

bench: $(INSTALLED) ## Run the benchmark
	$(BIN)/python -m bench

clean: ## Remove the demo data and caches (keeps the virtualenv)
	rm -rf .demo .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
	rm -rf *.egg-info
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean ## Also remove the virtualenv
	rm -rf $(VENV)
