# Two commands on a fresh machine with python3 and make: `make run` and `make test`.
# Everything else (uv, the virtual environment, the Temporal binaries) is installed from
# the lock file on first use.

PYTHON_BOOT ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python

export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test install lint typecheck fix clean-state bench

$(UV):
	$(PYTHON_BOOT) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON_BOOT)
	@touch $@

install: $(VENV)/.synced

## run: the whole stack on embedded defaults (Ctrl-C stops all of it)
# Development mode: the published default secrets are accepted (with a loud warning);
# without it the API, worker and CLI refuse to start with them.
run bench: export ECOKATSU_ENV = development
run: install
	@mkdir -p var/mail
	$(PY) cli.py migrate
	$(PY) cli.py seed-demo
	$(VENV)/bin/honcho --procfile Procfile start

## test: lint, type-check, and the whole suite (real Temporal, SMTP, SQLite, PostgreSQL)
test: install lint typecheck
	$(VENV)/bin/pytest

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck:
	$(VENV)/bin/mypy .

fix: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## bench: N customers through the circle journey at once; prints latency and memory
N ?= 200
bench: install
	$(PY) -m bench.journeys $(N)

## clean-state: forget the local stack's journeys, store and mail (var/)
clean-state:
	rm -rf var
