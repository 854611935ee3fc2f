# ivr-cbt: every target creates or updates the virtual environment it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench serve lint clean venv

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

## test: the whole suite (set TEST_DATABASE_URL to run the database tests on PostgreSQL too)
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## bench: webhook latency under gunicorn vs a bare Flask floor, and in-process calls per second
bench: $(STAMP)
	$(BIN)/python benchmarks/webhooks.py

## serve: the web app on http://127.0.0.1:5000 (development server)
serve: $(STAMP)
	$(BIN)/python manage.py init-db
	$(BIN)/python manage.py serve

lint: $(STAMP)
	$(BIN)/ruff check ivr_cbt tests benchmarks

clean:
	rm -rf $(VENV) instance .pytest_cache
