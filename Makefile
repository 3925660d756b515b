# anyedge: two commands set everything up on a fresh machine.
#   make demo   create .venv, install anyedge with its engines, detect faces with every engine
#   make test   create .venv, install anyedge with the test extras, run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SHARED ?= $(abspath ../shared)

# Use the shared fixtures when they are beside the checkout; elsewhere models come from
# their registry sources (the BlazeFace files from the mediapipe wheel on PyPI).
ifneq ($(wildcard $(SHARED)/models),)
export ANYEDGE_MODEL_PATH ?= $(SHARED)/models
export ANYEDGE_DATA ?= $(SHARED)/data
endif

.PHONY: demo test bench riscv-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.demo-installed: pyproject.toml $(wildcard setup.py) | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[openvino,demo]"
	touch $@

$(VENV)/.test-installed: pyproject.toml $(wildcard setup.py) | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[all]"
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(BIN)/anyedge demo

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q

bench: $(VENV)/.test-installed
	$(BIN)/python benchmarks/detect_latency.py

clean:
	rm -rf $(VENV) build out benchmarks/results .pytest_cache
