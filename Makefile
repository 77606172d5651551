# Two commands do everything: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Deploy validators (checkov, cfn-lint, hadolint, kubernetes-validate) pin their own
# dependencies, so they live in a venv of their own, apart from the service's.
TOOLS_VENV ?= .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean tools model

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(TOOLS_STAMP): requirements-tools.txt
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r requirements-tools.txt
	touch $(TOOLS_STAMP)

tools: $(TOOLS_STAMP)

demo: $(STAMP)
	$(BIN)/detector demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(TOOLS_STAMP)
	DETECTOR_TOOLS_BIN=$(abspath $(TOOLS_VENV))/bin $(BIN)/pytest

test: lint typecheck unit

# Benchmarks (not part of the tests): each prints its figures beside a reference measured in
# the same run. bench.end_to_end also needs fauxqs: cd bench/node && npm install.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.parse
	$(BIN)/python -m bench.features
	$(BIN)/python -m bench.pipeline
	$(BIN)/python -m bench.sqs_cost
	$(BIN)/python -m bench.replay

clean:
	rm -rf $(VENV) $(TOOLS_VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

# The shipped default model, from a synthetic organisation's clean trail (see models/default).
model: $(STAMP)
	$(BIN)/python -m detector.synthetic --out out/synthetic --seed 0 --days 14 --no-attacks
	$(BIN)/detector train out/synthetic/archive --out models/default --seed 0
