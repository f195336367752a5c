# The two commands: `make run` (the whole system on embedded defaults) and `make test`.
# Each sets up what it needs: a .venv with the pinned packages, buf from npm.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp

.PHONY: run test lint format fuzz proto lint-proto breaking-proto bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo 'cannot create a venv: on Debian, apt-get install python3-venv' >&2; exit 1; }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --silent
	touch $@

install: $(STAMP)

## make run: broker, registry, matcher, sender and gateway on their defaults; Ctrl-C stops all.
run: $(STAMP)
	$(BIN)/hooks run

## make test: every test, against SQLite and PostgreSQL, with a real broker, and the console in Debian's
## Chromium (tools/ensure-chromium installs it when missing). In TEST_WORKERS processes
## (each a broker of its own), a file's tests in one of them: most of a test's time is spent waiting on
## the services it started, so 3 on 2 cores take 5 minutes where one takes 12.
TEST_WORKERS ?= 3
test: $(STAMP) $(NODE_STAMP) lint
	tools/ensure-postgres
	tools/ensure-chromium
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

## make lint: ruff's rules and its formatter ([tool.ruff] in pyproject.toml; make format applies them),
## and mypy on the services and the gateway ([tool.mypy]).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## make fuzz: the hostile-input fuzz suite (tests/fuzz) for longer than make test runs it:
## FUZZ_EXAMPLES examples per test and database (make fuzz FUZZ_EXAMPLES=5000), or again and again
## for FUZZ_SECONDS seconds (make fuzz FUZZ_SECONDS=3600).
FUZZ_EXAMPLES ?= 1000
FUZZ_SECONDS ?= 0
fuzz: $(STAMP)
	tools/ensure-postgres
	FUZZ_PROFILE=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SECONDS=$(FUZZ_SECONDS) \
		$(BIN)/python -m pytest tests/fuzz --timeout=0 $(PYTEST_ARGS)

## make proto: regenerate gen/ from protos/.
proto: $(STAMP)
	$(BIN)/python -m tools.protogen

lint-proto: $(NODE_STAMP)
	node_modules/.bin/buf lint

## make breaking-proto AGAINST=.git#branch=main: buf breaking (FILE) against a git ref.
AGAINST ?= .git\#branch=main
breaking-proto: $(NODE_STAMP)
	node_modules/.bin/buf breaking --against '$(AGAINST)'

## make bench: every benchmark in bench/, printing its figures.
bench: $(STAMP)
	tools/ensure-postgres
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) node_modules var .pytest_cache
