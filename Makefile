# CRM Steward: `make demo` to try it, `make test` to run every test.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MANAGE := $(BIN)/python manage.py

.PHONY: demo test chaos fuzz lint format venv lock clean bench

venv: $(STAMP)

# The environment is rebuilt whenever the lock file changes.
$(STAMP): requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "CRM Steward needs Python 3.11; set PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	touch $(STAMP)

demo: export DEBUG ?= true
# Procfile.dev says plain `python`: make it the environment's.
demo: export PATH := $(abspath $(BIN)):$(PATH)
demo: venv
	$(MANAGE) migrate --no-input
	$(MANAGE) demo_setup
	$(MANAGE) sandbox_seed --keep
	$(MANAGE) demo_agent
	$(BIN)/honcho --procfile Procfile.dev start

# A throwaway key, so the suite runs with DEBUG off like production.
test: export SECRET_KEY ?= test-only-key-not-a-secret
test: venv
	mkdir -p test-results
	$(BIN)/python -m pytest -m "not chaos and not fuzz" $(PYTEST_ARGS)

# Real processes (gunicorn, workers, beat, the sandbox) on PostgreSQL and Redis under
# injected faults: needs DATABASE_URL=postgres://… and Redis (TEST_REDIS_URL, default db 13).
chaos: export SECRET_KEY ?= test-only-key-not-a-secret
chaos: venv
	$(BIN)/python -m pytest -m chaos tests/chaos -p no:cacheprovider -s $(PYTEST_ARGS)

# schemathesis over the OpenAPI schema against the live server, bounded (a fixed seed, a few
# examples per operation, a deadline per request): no 500, every answer as documented.
fuzz: export SECRET_KEY ?= test-only-key-not-a-secret
fuzz: venv
	$(BIN)/python -m pytest -m fuzz tests/api/test_fuzz.py -p no:cacheprovider -s $(PYTEST_ARGS)

# Sandbox throughput and latency (figures go in README.md).
bench: export SECRET_KEY ?= bench-only-key-not-a-secret
bench: venv
	$(BIN)/python bench/sandbox_bench.py
	$(BIN)/python bench/pipeline_bench.py
	$(BIN)/python bench/admin_bench.py
	$(BIN)/python bench/chat_bench.py
	$(BIN)/python bench/chaos_bench.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Re-resolve every pinned version from pyproject.toml (needs the package index).
lock: venv
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --strip-extras --extra dev --no-emit-index-url \
		--no-emit-find-links --output-file requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) var test-results .pytest_cache .ruff_cache
