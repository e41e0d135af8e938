# Every target builds the virtual environment from the hash-pinned lock file first,
# so a fresh machine needs nothing but python3 (3.11+) and, for chain work, node/npm.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# anvil (Foundry's dev node) for chain work: the npm package, installed into .tools/.
ANVIL_VERSION := 1.7.1
ANVIL_STAMP := .tools/.anvil-$(ANVIL_VERSION)

.PHONY: demo test bench lint typecheck lock clean venv

venv: $(STAMP) $(ANVIL_STAMP)

$(STAMP): requirements.lock pyproject.toml setup.py src/apicredits/oracle/_keccak.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Without npm this only warns: the embedded chain needs no anvil, and anvil's tests skip
# (or fail under CI=true) saying how to install it.
$(ANVIL_STAMP):
	@if command -v npm >/dev/null 2>&1; then \
		npm install --prefix .tools --no-save --no-audit --no-fund --ignore-scripts \
			--loglevel=error @foundry-rs/anvil@$(ANVIL_VERSION) && touch $(ANVIL_STAMP); \
	else \
		echo "npm not found: anvil not installed (install node/npm, then: make venv)"; \
	fi

demo: $(STAMP) $(ANVIL_STAMP)
	$(BIN)/apicredits demo

test: $(STAMP) $(ANVIL_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/mypy bench/*.py
	$(BIN)/pytest

bench: $(STAMP) $(ANVIL_STAMP)
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/simulator.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/auth.py
	$(BIN)/python bench/chain.py
	$(BIN)/python bench/oracle.py --gas

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/mypy bench/*.py

# Re-resolve the lock file (needs uv: `pip install uv`).
lock:
	uv pip compile pyproject.toml requirements-build.in --extra dev --extra sdk --generate-hashes --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .tools .apicredits .pytest_cache .mypy_cache .ruff_cache build
	find src -name "*.so" -delete
