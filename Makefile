# Two commands do everything: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Deploy validators (checkov, cfn-lint, hadolint, kubernetes-validate) pin their own
# dependencies, so they live in a venv of their own, apart from the service's.
TOOLS_VENV ?= .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed
# Installs come from lock files with hashes (requirements/*.lock), made from pyproject.toml and
# requirements-tools.txt by `make lock`, for Python 3.11 on x86_64 Linux (CI and the image).
LOCK_VENV ?= .venv-lock
LOCK_STAMP := $(LOCK_VENV)/.installed
LOCK := $(LOCK_VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command 'make lock' $(LOCK_ARGS)

.PHONY: demo test lint typecheck unit bench clean tools model lock docs

$(STAMP): pyproject.toml requirements/dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

$(TOOLS_STAMP): requirements/tools.lock
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements/tools.lock
	touch $(TOOLS_STAMP)

$(LOCK_STAMP): requirements/lock-tools.txt
	test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements/lock-tools.txt
	touch $(LOCK_STAMP)

# Refresh the lock files after a change to pyproject.toml or requirements-tools.txt; pins that
# still fit are kept. `make lock LOCK_ARGS=--upgrade` moves every pin to the newest release.
# The image's runtime lock is constrained to the dev lock, so it runs the versions tested.
lock: $(LOCK_STAMP)
	$(LOCK) pyproject.toml --extra dev -o requirements/dev.lock
	$(LOCK) pyproject.toml -c requirements/dev.lock -o requirements/runtime.lock
	$(LOCK) requirements-tools.txt -o requirements/tools.lock

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
	rm -rf $(VENV) $(TOOLS_VENV) $(LOCK_VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

# The shipped default model, from a synthetic organisation's clean trail (see models/default).
model: $(STAMP)
	$(BIN)/python -m detector.synthetic --out out/synthetic --seed 0 --days 14 --no-attacks
	$(BIN)/detector train out/synthetic/archive --out models/default --seed 0

# The flags tables of docs/operations.md and docs/scale-out.md, from the service's and the
# router's settings (tests/unit/test_docs.py checks that they agree).
docs: $(STAMP)
	$(BIN)/python -c 'import pathlib; from detector.service import options_table; \
	p = pathlib.Path("docs/operations.md"); s = p.read_text(); \
	a, b = "<!-- flags: begin -->\n", "<!-- flags: end -->"; \
	p.write_text(s[: s.index(a) + len(a)] + options_table() + "\n" + s[s.index(b) :])'
	$(BIN)/python -c 'import pathlib; from detector.route import route_options_table; \
	p = pathlib.Path("docs/scale-out.md"); s = p.read_text(); \
	a, b = "<!-- route-flags: begin -->\n", "<!-- route-flags: end -->"; \
	p.write_text(s[: s.index(a) + len(a)] + route_options_table() + "\n" + s[s.index(b) :])'
