# The two commands: `make demo` and `make test`. Both create .venv when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# reinstall when the packaging or the extension's source changes
STAMP := $(VENV)/.installed
JOBS ?= $(shell nproc)

.PHONY: demo test conformance bench clean opencl-deps

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

# PoCL, the CPU OpenCL driver the opencl target's tests run on, with the ICD loader and headers
# (Debian packages); where apt is not at hand the OpenCL tests skip and say why
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
opencl-deps:
	@if ! ls /etc/OpenCL/vendors/*.icd >/dev/null 2>&1 || [ ! -e /usr/include/CL/cl.h ]; then \
	  echo "installing PoCL (pocl-opencl-icd, ocl-icd-opencl-dev) for the opencl target's tests"; \
	  ( $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	      pocl-opencl-icd ocl-icd-opencl-dev >/dev/null ) || echo "warning: PoCL not installed: the OpenCL tests will skip"; \
	fi

test: $(STAMP) opencl-deps
	$(BIN)/python -m pytest -q -n $(JOBS) --durations=15 tests

conformance: $(STAMP)
	$(BIN)/python -m dydca.conformance

# the bench extra (onnxruntime, MNN, matplotlib) once; then the shape-change and SR-family benchmarks
# (figures, no gate; bench.opencl_vs_cpu compares the OpenCL target)
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.shape_change
	$(BIN)/python -m bench.sr_family

clean:
	rm -rf build dist *.egg-info $(VENV) dydca/_runtime*.so
