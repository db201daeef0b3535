# Two commands for a newcomer: `make demo` and `make test`. Both create .venv when it is
# missing and (re)install the package when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SOURCES := $(wildcard miaudit tests benchmarks examples)
STAMP := $(VENV)/.miaudit-installed

.PHONY: demo test lint format clean browser

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/miaudit demo --out results/demo

lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)

test: lint browser
	$(BIN)/python -m pytest

# The browser test renders report.html in headless Chromium: install Debian's package when
# it is missing and we may (root); otherwise the test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium for the browser test"; \
	    apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } || \
	    echo "could not install chromium: the browser test will skip"; \
	  else echo "chromium missing and not root: the browser test will skip"; fi

format: $(STAMP)
	$(BIN)/ruff format $(SOURCES)
	$(BIN)/ruff check --fix $(SOURCES)

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache
