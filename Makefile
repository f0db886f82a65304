# keras-masknet developer commands. `make demo` and `make test` do all the
# set-up on a fresh machine: they create .venv and install the pinned backends.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BACKENDS := tensorflow jax torch
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install demo lint format test test-quick test-tensorflow test-jax \
	test-torch clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

## install: create .venv with the pinned keras, backends and tools
install: $(STAMP)

## demo: train, save and reload the quickstart model (examples/quickstart.py)
demo: install
	$(PY) examples/quickstart.py

## lint: ruff check and ruff format --check
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

## format: apply ruff's fixes and formatting
format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

## test: lint, then the whole suite once per backend (what CI runs)
test: lint
	@set -e; for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend"; \
		KERAS_BACKEND=$$backend $(PY) -m pytest -q; \
	done

## test-quick: the fast tests on one backend (KERAS_BACKEND, default jax)
test-quick: install
	KERAS_BACKEND=$${KERAS_BACKEND:-jax} $(PY) -m pytest -q -m "not slow"

## test-<backend>: the whole suite on one backend
test-tensorflow test-jax test-torch: test-%: install
	KERAS_BACKEND=$* $(PY) -m pytest -q

clean:
	rm -rf $(VENV) build dist site *.egg-info .pytest_cache .ruff_cache
