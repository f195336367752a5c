# The two commands: `make run` (the whole system on embedded defaults) and `make test`.
# Each sets up what it needs: a .venv with the pinned packages, buf from npm.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp

.PHONY: run test proto lint-proto breaking-proto bench install clean

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

## make test: every test, against SQLite and PostgreSQL, with a real broker.
test: $(STAMP) $(NODE_STAMP)
	tools/ensure-postgres
	$(BIN)/python -m pytest $(PYTEST_ARGS)

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
