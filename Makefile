# Two commands do all the set-up on a fresh machine (Python >= 3.10, pip, venv):
#   make demo   creates .venv if missing, installs kerasdl, runs the main job
#   make test   creates .venv if missing, installs kerasdl[test], runs the test suite;
#               then creates .venv-jax (Keras on JAX, no TensorFlow) and runs the
#               backend-agnostic tests (layers, regularizers, callbacks, the CNN
#               builders) there
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kerasdl-installed
JAX_VENV ?= .venv-jax
JAX_PY := $(JAX_VENV)/bin/python
JAX_STAMP := $(JAX_VENV)/.kerasdl-installed
# Everything that needs no TensorFlow: layers, regularizers, callbacks, Keras' own
# tests of the classes kerasdl replaces, and the CNN builders (build, train a step,
# .keras round trip).
JAX_TESTS := tests/layers tests/regularizers tests/callbacks tests/compat \
	tests/models/test_model_zoo.py tests/models/test_model_options.py \
	tests/models/test_param_counts.py tests/models/test_model_saving.py \
	tests/models/test_mlp.py tests/models/test_ensemble.py \
	tests/decoding/test_search.py tests/decoding/test_sampling.py \
	tests/decoding/test_generate.py tests/models/test_rnn_language_model.py \
	tests/models/test_transformer_language_model.py \
	tests/models/test_language_model_ensemble.py \
	tests/models/test_transformer_translator_cache.py
PYTEST_ARGS ?=

.PHONY: demo study test test-tensorflow test-jax test-large bench lint install

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

# Keras on JAX without TensorFlow, as on a JAX-only machine; kerasdl's layers
# need only Keras. (The CLI, data pipelines and export need TensorFlow.)
$(JAX_STAMP): pyproject.toml
	test -x $(JAX_PY) || $(PYTHON) -m venv $(JAX_VENV)
	$(JAX_PY) -m pip install -q --upgrade pip
	$(JAX_PY) -m pip install -q "jax[cpu]==0.10.2" "keras==3.15.1" numpy scikit-learn \
		pytest pytest-xdist hypothesis
	$(JAX_PY) -m pip install -q --no-deps -e .
	touch $(JAX_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m kerasdl train lenet --dataset digits

study: $(STAMP)
	$(PY) -m kerasdl study regularization

test: test-tensorflow test-jax

test-tensorflow: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q $(PYTEST_ARGS)

test-jax: $(JAX_STAMP)
	KERAS_BACKEND=jax $(JAX_PY) -m pytest -n 2 --dist loadfile -q $(JAX_TESTS) $(PYTEST_ARGS)

test-large: $(STAMP)
	$(PY) -m pytest -m large -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/layers.py

lint: $(STAMP)
	$(PY) -m ruff check kerasdl tests benchmarks
