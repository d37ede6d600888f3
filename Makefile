# The two commands: `make demo` and `make test`. Both create .venv when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# reinstall when the packaging or the extension's source changes
STAMP := $(VENV)/.installed
JOBS ?= $(shell nproc)

.PHONY: demo test conformance bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

INSTALL_DEPS := $(BIN)/python setup.py pyproject.toml runtime_cpp/bindings.cpp runtime_cpp/include/dydca/api.h

$(STAMP): $(INSTALL_DEPS)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# the demo needs no torch: the bundled SR model was trained ahead of time (examples/models/bikes_x2)
DEMO_STAMP := $(VENV)/.installed-demo
$(DEMO_STAMP): $(INSTALL_DEPS)
	$(BIN)/pip install -q -e '.[demo]'
	touch $@

demo: $(DEMO_STAMP)
	$(BIN)/python -m dydca.sr.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(JOBS) tests

conformance: $(STAMP)
	$(BIN)/python -m dydca.conformance

# the bench extra (onnxruntime, MNN, matplotlib) once; then the shape-change benchmark (figures, no gate)
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.shape_change

clean:
	rm -rf build dist *.egg-info $(VENV) dydca/_runtime*.so
