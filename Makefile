# retention-worker: developer tasks. Needs GNU make and python3 (3.11 or newer); the first
# target that needs the tools creates $(VENV) and installs the project with its dev extra.

VENV ?= .venv
PYTHON ?= python3
PYTEST_ARGS ?=
ROWS ?=
BENCH_ARGS ?=
RETENTION_HTTP_PORT ?= 9464
export RETENTION_HTTP_PORT

BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.DEFAULT_GOAL := help
TOOLS ?= .tools
.PHONY: help install demo run test lint bench clean distclean \
	deploy-check deploy-tools chart image-lint alerts dashboard dashboard-png

help: ## List the targets
	@echo "retention-worker make targets:"
	@grep -E '^[a-z][a-z-]*:.*## ' $(firstword $(MAKEFILE_LIST)) \
		| awk 'BEGIN {FS = ":.*## "} {printf "  make %-13s %s\n", $$1, $$2}'
	@echo "Variables: VENV=$(VENV) PYTHON=$(PYTHON) PYTEST_ARGS='$(PYTEST_ARGS)'" \
		"RETENTION_HTTP_PORT=$(RETENTION_HTTP_PORT) ROWS=$(ROWS) BENCH_ARGS='$(BENCH_ARGS)'"

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

test: $(INSTALLED) ## Run the tests on every core (extra pytest options: PYTEST_ARGS='-k periods')
	$(BIN)/pytest -n auto $(PYTEST_ARGS)

lint: $(INSTALLED) ## ruff check, ruff format --check and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy worker connectors

bench: $(INSTALLED) ## Benchmark on PostgreSQL (quick; ROWS=1000000 for the full shape, BENCH_ARGS=--help)
	$(BIN)/python -m bench $(if $(ROWS),--rows $(ROWS),--quick) $(BENCH_ARGS)

# --- Deploy checks: the image, the chart, the alerts and the dashboard ---------------------
# The tools go into $(TOOLS) (git-ignored): see deploy/scripts/install-tools.sh.

deploy-tools: ## Install helm, kubernetes-validate, hadolint, tsc, ... into .tools/
	bash deploy/scripts/install-tools.sh $(TOOLS)

image-lint: deploy-tools ## hadolint the Dockerfile
	$(TOOLS)/bin/hadolint Dockerfile
	@echo "hadolint: Dockerfile clean"

chart: deploy-tools ## helm lint, render for Kubernetes 1.32 and validate; values schema
	bash deploy/scripts/check_chart.sh $(TOOLS)

alerts: deploy-tools ## promtool check rules and promtool test rules on the alerts
	promtool check rules deploy/prometheus/alerts.yaml
	promtool test rules deploy/prometheus/alerts.test.yaml

dashboard: deploy-tools ## Type-check the Grafana dashboard; check its PromQL with promtool
	$(TOOLS)/venv/bin/python deploy/scripts/check_dashboard.py deploy/grafana/retention-worker.json --tools $(TOOLS)

deploy-check: image-lint chart alerts dashboard ## Every deploy check above (installs its tools)
	@echo "deploy-check: all passed"

dashboard-png: $(INSTALLED) deploy-tools ## Render docs/dashboard.png from a real run (needs chromium)
	$(BIN)/python deploy/scripts/render_dashboard.py --out docs/dashboard.png

clean: ## Remove the demo data and caches (keeps the virtualenv)
	rm -rf .demo .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
	rm -rf *.egg-info
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean ## Also remove the virtualenv and the deploy tools
	rm -rf $(VENV) $(TOOLS)
