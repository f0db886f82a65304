# keras-masknet developer commands. `make demo` and `make test` do all the
# set-up on a fresh machine: they create .venv and install the pinned backends.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BACKENDS := tensorflow jax torch
# pytest-xdist processes per backend session: the suite is mostly Python and
# one core per test; files stay whole on one process (module fixtures run
# once, and JAX compiles a file's shapes once). Files go out in the order
# tests/conftest.py collects them, the slowest first, not by their number of
# tests (xdist's default puts the few long subprocess tests last, where one
# process waits for the other). PYTEST_WORKERS=0 runs in this process.
PYTEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile \
	--no-loadscope-reorder
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONDONTWRITEBYTECODE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# The oldest Keras that pyproject.toml allows, pinned with a JAX of its age in
# requirements-oldest.txt: the layer tests also run there, in a venv of its
# own that is made anew whenever that file changes. It is installed without
# byte-compiling, and caches the bytecode of what the tests import in itself.
OLDEST_VENV := .venvs/oldest-keras
OLDEST_PY := $(OLDEST_VENV)/bin/python
OLDEST_STAMP := $(OLDEST_VENV)/.installed
# The layer tests, one file per layer (each runs the tests/testing.py
# harness), and the parity with the reference; `-m "not slow"` leaves out
# the compiled-training check: it tests the backend's compiler, not Keras.
OLDEST_TESTS := tests/test_mask_block.py tests/test_mlp.py \
	tests/test_mask_net.py tests/test_reference.py

.PHONY: install demo lint format test test-quick test-tensorflow test-jax \
	test-torch test-oldest dist docs serve-docs bench bench-paired \
	bench-serving clean

$(STAMP): requirements.txt requirements-docs.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-docs.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

## install: create .venv with the pinned keras, backends and tools
install: $(STAMP)

## demo: train, save and reload the quickstart model (examples/quickstart.py)
demo: install
	$(PY) examples/quickstart.py

## lint: ruff check, ruff format --check and mypy (strict) on the package
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

## format: apply ruff's fixes and formatting
format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

## test: lint, then the whole suite once per backend (what CI runs); the
## tensorflow session also builds the docs strictly and opens them in chromium
test: lint
	@set -e; for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend"; \
		KERAS_BACKEND=$$backend $(PYTEST); \
	done
	@$(MAKE) --no-print-directory test-oldest

## docs: build the docs site into site/; any warning is an error
docs: install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

## serve-docs: serve the docs on http://127.0.0.1:8000, rebuilt on each edit
serve-docs: install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve --dev-addr 127.0.0.1:8000

## test-quick: the fast tests on one backend (KERAS_BACKEND, default jax)
test-quick: install
	KERAS_BACKEND=$${KERAS_BACKEND:-jax} $(PYTEST) -m "not slow"

## test-<backend>: the whole suite on one backend
test-tensorflow test-jax test-torch: test-%: install
	KERAS_BACKEND=$* $(PYTEST)

$(OLDEST_STAMP): requirements-oldest.txt pyproject.toml
	@if ! cmp -s requirements-oldest.txt $(OLDEST_VENV)/requirements.txt; \
	then rm -rf $(OLDEST_VENV) && $(PYTHON) -m venv $(OLDEST_VENV); fi
	$(OLDEST_PY) -m pip install -q --no-compile -r requirements-oldest.txt -e .
	cp requirements-oldest.txt $(OLDEST_VENV)/requirements.txt
	touch $@

## test-oldest: the layer tests against the oldest supported Keras (jax)
test-oldest: $(OLDEST_STAMP)
	@echo "=== oldest Keras: $$(grep '^keras==' requirements-oldest.txt)"
	KERAS_BACKEND=jax PYTHONDONTWRITEBYTECODE= \
		PYTHONPYCACHEPREFIX=$(OLDEST_VENV)/pycache \
		$(OLDEST_PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile \
		-m "not slow" $(OLDEST_TESTS)

## dist: build the sdist and the wheel into dist/, then `twine check` them
dist: install
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*

## bench: keras-masknet against the reference PyTorch implementation on
## this machine (never part of `make test`); prints the table and writes
## docs/benchmarks/. Shorter: make bench BENCH_ARGS="--quick"
## Its 15-minute budget counts from make's start, set-up included.
BENCH_START := $(shell date +%s)
# Serving latency (benchmarks/serving.py) after the training table.
SERVING_ARGS ?= --rounds 3 --calls 200
bench: install
	$(PY) -m pip install -q -r benchmarks/requirements.txt
	$(PY) benchmarks/run.py --started-at $(BENCH_START) $(BENCH_ARGS)
	$(PY) benchmarks/serving.py --out-dir docs/benchmarks $(SERVING_ARGS)

## bench-serving: serving latency alone (each backend's recommended path,
## Keras' eager torch path, the reference; ~3 minutes); writes
## docs/benchmarks/serving.{json,md}
bench-serving: install
	$(PY) benchmarks/serving.py --out-dir docs/benchmarks $(SERVING_ARGS)

## bench-paired: also trains each counted mode in turns with the reference,
## in its own process (7 rounds): the ratios targets 1 and 3 (bfloat16, on
## a CPU with bfloat16 units) count, with the machine's drift cancelled;
## about 12 minutes; writes docs/benchmarks/paired/
bench-paired: install
	$(PY) -m pip install -q -r benchmarks/requirements.txt
	$(PY) benchmarks/run.py --paired 7 --budget 1500 \
		--out-dir docs/benchmarks/paired $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venvs build dist site *.egg-info .pytest_cache \
		.ruff_cache
