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
# Byte-compile the installed packages once: machines with PYTHONDONTWRITEBYTECODE set
# (this one) would otherwise compile ~2,400 modules from source at every process start
# (~5 s of CPU for each worker, API and CLI process, and every workflow sandbox import).
export UV_COMPILE_BYTECODE := 1

.PHONY: run test install lint typecheck fix clean-state bench bench-idle faults screens

$(UV):
	$(PYTHON_BOOT) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON_BOOT)
	@touch $@

# The project's own modules too (compileall skips what is up to date): the workflow
# sandbox imports the workflow modules anew for every workflow run it starts.
install: $(VENV)/.synced
	@$(PY) -m compileall -q -j 0 -x '/(\.venv|\.tools|var|node_modules)/' . >/dev/null

## run: the whole stack on embedded defaults (Ctrl-C stops all of it)
# Development mode: the published default secrets are accepted (with a loud warning);
# without it the API, worker and CLI refuse to start with them.
run bench bench-idle: export ECOKATSU_ENV = development
run: install
	@mkdir -p var/mail
	$(PY) cli.py migrate
	$(PY) cli.py seed-demo
	$(VENV)/bin/honcho --procfile Procfile start

## test: lint, type-check, and the whole suite (real Temporal, SMTP, SQLite, PostgreSQL)
# The fault suite (tests/faults, marker `faults`) is left out here ON PURPOSE: it takes
# ~2.5 minutes and its time-bound promise ("every journey enrolled within 165 s") depends on
# how fast a killed worker comes back on a loaded machine (see README, Tests). It passes on
# a quiet machine; run it with `make faults`.
test: install lint typecheck
	$(VENV)/bin/pytest -m "not faults and not bench"

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck:
	$(VENV)/bin/mypy .

fix: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## bench: issue 10's table, in one run on one dev server: a bare workflow of the journey's
## shape, then the product as separate processes (worker, API) over HTTP; prints the goals
## as ratios, per-step p50/p95/p99, login cost, peak RSS, 2 workers + 2 APIs, the dev
## server's ceiling; writes var/bench/last-run.txt (about 5 minutes here)
# N: journeys at C at once (login excluded); STEPS / SIGNUPS / LOGINS: walks one at a time;
# BARE_CALLS / BARE_N: the bare steps at c=1 and journeys at C; CEILING: the bare
# local-activity shape at these concurrencies too; BURST: logins sent at once under step
# traffic. BENCH_ARGS passes anything else (python -m bench --help).
N ?= 100
C ?= 20
STEPS ?= 100
SIGNUPS ?= 20
LOGINS ?= 20
BARE_CALLS ?= 200
BARE_N ?= 200
CEILING ?= 50,100
BURST ?= 40
BENCH_ARGS ?=
bench: install
	$(PY) -m bench --journeys $(N) --concurrency $(C) --steps $(STEPS) --signups $(SIGNUPS) \
	  --logins $(LOGINS) --bare-calls $(BARE_CALLS) --bare-journeys $(BARE_N) \
	  --ceiling $(CEILING) --burst $(BURST) $(BENCH_ARGS)

## bench-idle: IDLE_N journeys waiting on their reminder timers: the worker's RSS, zero
## failures, and its comeback after kill -9; writes var/bench/idle-last-run.txt
## (10,000: about 14 minutes here)
IDLE_N ?= 10000
IDLE_C ?= 20
bench-idle: install
	$(PY) -m bench.idle --journeys $(IDLE_N) --concurrency $(IDLE_C) $(BENCH_ARGS)

## clean-state: forget the local stack's journeys, store and mail (var/)
clean-state:
	rm -rf var

## faults: the fault suite (issue 6): 30 journeys through the API while the worker and the
## Temporal server are killed and the SMTP sink stopped; prints the table (~4 min)
faults: install
	$(VENV)/bin/pytest tests/faults -m faults -s -p no:cacheprovider

## screens: the browser tests, writing a PNG of every screen to docs/screens/ (README gallery)
screens: install
	ECOKATSU_SCREENSHOTS=1 $(VENV)/bin/pytest tests/web -p no:cacheprovider
