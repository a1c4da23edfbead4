# `make demo` and `make test` each build .venv on first use and reinstall when pyproject.toml or
# the lock changes. Dependencies come from requirements-dev.lock (exact versions, sha256 hashes:
# pip refuses anything else), then uchast itself without its dependencies.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean lock

$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/uchast demo

# One worker per core, at most 4 (pytest-xdist): many tests wait on subprocesses, PostgreSQL
# and browsers, and every test makes its own databases, ports and directories.
test: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -n auto --maxprocesses 4 --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/ingest_ledger.py

# After changing the dependencies in pyproject.toml: regenerate both locks (pip-tools, any venv).
LOCK := piptools compile --quiet --generate-hashes --strip-extras --no-emit-index-url \
	--no-emit-find-links
lock:
	$(PYTHON) -m $(LOCK) --output-file requirements.lock pyproject.toml
	$(PYTHON) -m $(LOCK) --extra dev --output-file requirements-dev.lock pyproject.toml

clean:
	rm -rf $(VENV) *.egg-info uchast.db uchast.db-wal uchast.db-shm
