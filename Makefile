# Two commands on a fresh machine with only Python >= 3.11: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser pgbouncer run demo test test-unit lint bench screenshots clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

browser: ## Debian's chromium + chromedriver, for the dashboard's end-to-end test (once)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing Debian's chromium and chromium-driver"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; }

pgbouncer: ## Debian's pgbouncer, unpacked into .data/pgbouncer (no root, no service), for tests/test_pgbouncer.py (once)
	@command -v pgbouncer >/dev/null || test -x .data/pgbouncer/usr/sbin/pgbouncer || { \
	  echo "unpacking Debian's pgbouncer into .data/pgbouncer"; \
	  rm -rf .data/pgbouncer-debs && mkdir -p .data/pgbouncer-debs && \
	  { (cd .data/pgbouncer-debs && apt-get download pgbouncer libc-ares2 libevent-2.1-7 2>/dev/null) || \
	    { $(SUDO) apt-get update -qq && (cd .data/pgbouncer-debs && apt-get download pgbouncer libc-ares2 libevent-2.1-7); }; } && \
	  for deb in .data/pgbouncer-debs/*.deb; do dpkg -x $$deb .data/pgbouncer || exit 1; done && \
	  rm -rf .data/pgbouncer-debs; }

run: install ## start PostgreSQL, the broker and the three services with a demo network; Ctrl-C stops all
	$(PY) -m devstack run

demo: install ## book a session, follow it to the patient's texts, print them, stop, exit 0 if it worked
	$(PY) -m devstack demo

# the suite's tests mostly wait (on services, the broker, PostgreSQL): more workers than
# cores; they share one PostgreSQL and one broker (tests/conftest.py). TEST_JOBS=0: one process
TEST_JOBS ?= 4

test: install browser pgbouncer ## the whole test suite on TEST_JOBS pytest-xdist workers (starts its own PostgreSQL and broker)
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadgroup $(PYTEST_ARGS)

test-unit: install ## the rule tests in tests/unit: no PostgreSQL, no broker, seconds
	$(PY) -m pytest tests/unit -q -p no:cacheprovider -p no:schemathesis -p no:hypothesispytest $(PYTEST_ARGS)

lint: install ## ruff and strict mypy, as tests/test_lint.py runs them (FIX=1: apply ruff's safe fixes)
	$(PY) -m ruff check $(if $(FIX),--fix) .
	$(PY) -m mypy

screenshots: install browser ## the console's pages in headless Chromium, as docs/console-*.png (its end-to-end test)
	CONSOLE_SCREENSHOTS=$(CURDIR)/docs $(PY) -m pytest tests/test_console_e2e.py -q -p no:cacheprovider

bench: install ## the benchmarks in bench/, each printing figures and its ratio to a baseline
	$(PY) -m bench

load: install ## the whole stack as processes under a realistic load (SIZE bookings, default 10000), then the checks
	$(PY) -m bench.load --size $(or $(SIZE),10000) $(LOAD_ARGS)

proof: install ## the same load with kill -9, a paused broker, a PostgreSQL restart and Twilio errors; exit 1 on any violation
	$(PY) -m bench.load --size $(or $(SIZE),10000) --faults $(LOAD_ARGS)

clean:
	rm -rf $(VENV) .data .pytest_cache
