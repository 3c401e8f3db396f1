# Two commands on a fresh machine: `make demo` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo demo-full test check lint fmt bench fuzz install clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The SEED.md scenario end to end (about a minute; DEMO_ARGS="--duration 60s" for the full run).
demo: $(STAMP)
	$(BIN)/mcgw demo -f examples/store $(DEMO_ARGS)

demo-full: $(STAMP)
	$(BIN)/mcgw demo -f examples/store --duration 60s

## Debian's chromium for the dashboard's browser test (tests/admin), via apt when missing.
## Playwright (a dev dependency) drives it; Playwright's own browser builds are never fetched.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	    echo "the dashboard test needs $(CHROMIUM): apt-get install chromium (as root)"; exit 1; fi; \
	  echo "installing chromium with apt-get (for the dashboard's browser test)…"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

## The whole suite: static checks, then every test.
test: $(STAMP) browser
	$(BIN)/python scripts/check
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/python scripts/check

fmt: $(STAMP)
	$(BIN)/ruff format src tests scripts bench
	$(BIN)/ruff check --fix src tests scripts bench

## mcgw vs nginx vs the backend direct, with wrk (installs nginx and wrk via apt if missing).
bench: $(STAMP)
	$(BIN)/python bench/proxy.py

## Property-based fuzzing of the HTTP/1.1 parser (pure: FUZZ_EXAMPLES, 50k by default, per property; then
## the corpus split over real sockets). FUZZ_ARGS="-x" stops at the first failure.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q --timeout 0 \
		tests/dataplane/test_http1_parser.py -k "split or mutated or arbitrary" $(FUZZ_ARGS)
	MCGW_SOCKET_FUZZ_EXAMPLES=500 $(BIN)/python -m pytest -q --timeout 0 \
		tests/dataplane/test_http1_corpus.py -k split $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
