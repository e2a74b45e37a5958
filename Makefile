# Two commands do all the set-up on a fresh machine (Python >= 3.10, pip, venv):
#   make demo   creates .venv if missing, installs kerasdl, runs the main job
#   make test   creates .venv if missing, installs kerasdl[test], runs the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kerasdl-installed
PYTEST_ARGS ?=

.PHONY: demo study test test-large bench lint install

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m kerasdl train lenet --dataset digits

study: $(STAMP)
	$(PY) -m recipes.regularization_study

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q $(PYTEST_ARGS)

test-large: $(STAMP)
	$(PY) -m pytest -m large -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/layers.py

lint: $(STAMP)
	$(PY) -m ruff check kerasdl recipes tests benchmarks
