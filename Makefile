# Parlay developer entry points. Every target bootstraps what it needs on a fresh machine:
# uv (pip-installed if missing), the Python workspace venv (`uv sync --frozen`), and the
# pinned buf CLI from npm (`npm ci`, into node_modules/.bin/buf).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
# Use uv from PATH; after a fresh `pip install uv` it may only be reachable as `python3 -m uv`.
UV ?= $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
NPM ?= npm
BUF := node_modules/.bin/buf
SERVICES := $(notdir $(wildcard services/*))
IMAGE_PREFIX ?= parlay
IMAGE_TAG ?= dev
PYTEST_ARGS ?=

.PHONY: help setup uv venv node proto lint test run bench images

help: ## list targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: venv node ## install uv, the Python venv (uv.lock) and the buf CLI (package-lock.json)

uv:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || { \
	  echo "uv not found: pip install uv"; \
	  $(PYTHON) -m pip install --quiet uv || $(PYTHON) -m pip install --quiet --user --break-system-packages uv; }

venv: uv
	@$(UV) sync --frozen --quiet

node: $(BUF)

# npm ci when node_modules is missing or older than the lock file; without npm, say so and go on
# (buf lint is then skipped by `make lint` and by tests/test_contracts.py).
$(BUF): package.json package-lock.json
	@if command -v $(NPM) >/dev/null 2>&1; then \
	  $(NPM) ci --no-audit --no-fund --loglevel=error && touch $(BUF); \
	else \
	  echo "warning: npm not found; buf (proto lint/breaking) unavailable" >&2; \
	fi

proto: venv ## regenerate libs/contracts/src/parlay and proto/parlay.binpb from proto/
	@$(UV) run python scripts/gen_proto.py

lint: setup ## ruff, ruff format --check, mypy, buf lint, buf breaking (vs main)
	@UV="$(UV)" BUF="$(BUF)" bash scripts/lint.sh

test: setup ## the whole test suite (pytest)
	@rc=0; $(UV) run pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; fi; \
	exit $$rc

run: setup ## the local stack: broker, Postgres, migrations, all five services
	$(UV) run parlay dev

bench: setup ## benchmarks (bench/)
	$(UV) run python -m bench

images: ## docker build of each service (needs a reachable Docker engine)
	@if ! docker info >/dev/null 2>&1; then \
	  echo "images: no Docker engine reachable (docker info failed); nothing built."; exit 0; \
	fi; \
	for svc in $(SERVICES); do \
	  if [ ! -f services/$$svc/Dockerfile ]; then echo "images: services/$$svc has no Dockerfile, skipped"; continue; fi; \
	  echo "==> $(IMAGE_PREFIX)/$$svc:$(IMAGE_TAG)"; \
	  docker build -f services/$$svc/Dockerfile -t $(IMAGE_PREFIX)/$$svc:$(IMAGE_TAG) . ; \
	done
