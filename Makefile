# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint format clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# Both commands first check the Debian packages they need and install missing ones when they may.
run: $(STAMP)
	bash scripts/system-deps.sh run
	$(BIN)/python scripts/run.py

# Tests use their own data dir, queue and channel prefix, so they never touch a running `make run`.
test: $(STAMP)
	bash scripts/system-deps.sh test
	$(BIN)/python scripts/test.py $(PYTEST_ARGS)

# Benchmarks (issue 11): not part of `make test`; writes bench/results/*.json and BENCHMARKS.md.
# Set DATABASE_URL for PostgreSQL figures; BENCH_ARGS="overhead --smoke" runs one benchmark, smallest size.
bench: $(STAMP)
	bash scripts/system-deps.sh test
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) data .pytest_cache
