# Every target builds the virtual environment from the hash-pinned lock file first,
# so a fresh machine needs nothing but python3 (3.11+) and, for chain work, node/npm.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint typecheck lock clean venv

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/apicredits demo

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/simulator.py
	$(BIN)/python bench/gateway.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

# Re-resolve the lock file (needs uv: `pip install uv`).
lock:
	uv pip compile pyproject.toml requirements-build.in --extra dev --extra sdk --generate-hashes --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .apicredits .pytest_cache .mypy_cache .ruff_cache
