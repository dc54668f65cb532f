# The two set-up commands of the README:
#   make demo   create .venv if missing, install fairmetric, run `fairmetric demo`
#   make test   create .venv if missing, install with the test extra, lint, run the test suite
#   make lower-bounds   the oldest allowed dependency versions in a temporary venv, smoke tests
#                       (docs/dependencies.md; minutes and a network connection: not in `test`)
#   make gpu-check      the CUDA checks of benchmarks/gpu_check.py, one line each (skipped without
#                       a GPU; under 8 minutes on one)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean lower-bounds gpu-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/fairmetric demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check fairmetric tests examples scripts benchmarks docs/figures
	$(BIN)/ruff format --check fairmetric tests examples scripts benchmarks docs/figures

test: lint
	$(BIN)/python -m pytest

lower-bounds: $(VENV)/.installed-test
	PYTHON=$(BIN)/python bash scripts/check_lower_bounds.sh

gpu-check: $(VENV)/.installed
	bash benchmarks/gpu_check.sh

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
