# Every target creates and uses the local virtual environment on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast lint bench bench-quick bench-ai clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/livedash demo

# Four workers on two cores: most tests wait on subprocesses, servers and the database.
# worksteal: a worker left with long tests hands them to idle ones.
test: $(STAMP)
	$(PY) -m pytest -n 4 --dist worksteal

# SQLite only, no subprocess: the markers are applied by tests/conftest.py.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not postgres and not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy domain store projections processors cli

bench: $(STAMP)
	$(PY) scripts/bench.py --size full

bench-quick: $(STAMP)
	$(PY) scripts/bench.py --size quick

bench-ai: $(STAMP)
	$(PY) scripts/bench_ai.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
