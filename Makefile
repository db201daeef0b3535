# Two commands for a newcomer: `make demo` and `make test`. Both create .venv when it is
# missing and (re)install the package when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.miaudit-installed

.PHONY: demo test lint format clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/miaudit demo --out results/demo

lint: $(STAMP)
	$(BIN)/ruff check miaudit tests benchmarks
	$(BIN)/ruff format --check miaudit tests benchmarks

test: lint
	$(BIN)/python -m pytest

format: $(STAMP)
	$(BIN)/ruff format miaudit tests benchmarks
	$(BIN)/ruff check --fix miaudit tests benchmarks

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache
