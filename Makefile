# ivr-cbt: every target creates or updates the virtual environment it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench serve lint typecheck docs check clean venv chromium espeak
CHROMIUM ?= /usr/bin/chromium
ESPEAK ?= espeak-ng

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "ivr-cbt needs Python 3.11 or newer"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## demo: create/upgrade the database (SQLite under instance/), enrol 3 demo patients, play their calls
demo: $(STAMP)
	$(BIN)/python manage.py init-db
	$(BIN)/python manage.py demo

## chromium: Debian's Chromium for the dashboard's browser tests (apt-get, when missing and run as root)
chromium:
	@test -x $(CHROMIUM) || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "No Chromium at $(CHROMIUM): the browser tests will be skipped (apt-get install chromium)"; fi; }

## espeak: Debian's espeak-ng, which renders prompt clips (`manage.py prompts render-audio`; optional in production)
espeak:
	@command -v $(ESPEAK) >/dev/null || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Debian's espeak-ng for the prompt-audio tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null; \
	else echo "No $(ESPEAK): the prompt-audio tests will be skipped (apt-get install espeak-ng)"; fi; }

## test: the whole suite (set TEST_DATABASE_URL to run the database tests on PostgreSQL too)
test: $(STAMP) chromium espeak
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## bench: webhook latency under gunicorn vs a bare Flask floor, in-process calls per second, the dashboard, a dispatch tick, feedback generation, the cohort simulator
bench: $(STAMP)
	$(BIN)/python benchmarks/webhooks.py
	$(BIN)/python benchmarks/dashboard.py
	$(BIN)/python benchmarks/dispatch.py
	$(BIN)/python benchmarks/feedback.py
	$(BIN)/python benchmarks/cohort.py

## serve: the web app on http://127.0.0.1:5000 (development server)
serve: $(STAMP)
	$(BIN)/python manage.py init-db
	$(BIN)/python manage.py serve

## lint: ruff's checks and its formatting, as the pre-commit hook runs them
lint: $(STAMP)
	$(BIN)/ruff check ivr_cbt tests benchmarks docs manage.py
	$(BIN)/ruff format --check ivr_cbt tests benchmarks docs manage.py

## typecheck: mypy on the pure core and the database layer (the files listed in pyproject's [tool.mypy])
typecheck: $(STAMP)
	$(BIN)/mypy

## docs: build the documentation site (mkdocs, into site/); fails on a broken link
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet

## check: what CI runs besides the tests
check: lint typecheck docs

clean:
	rm -rf $(VENV) instance .pytest_cache site
