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
# The float twins of the shipped activity nets, which anyedge bench compares against.

.PHONY: demo test bench bench-har bench-device riscv-check aarch64-check apps-check pi-check riscv-board-check train-har clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.demo-installed: pyproject.toml $(wildcard setup.py) $(wildcard sdk/ops/*.pyx targets/bnn/*.pyx) | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[openvino,demo]"
	touch $@

$(VENV)/.test-installed: pyproject.toml $(wildcard setup.py) $(wildcard sdk/ops/*.pyx targets/bnn/*.pyx) | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[all]"
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(BIN)/anyedge demo

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q

bench: $(VENV)/.test-installed
	$(BIN)/python benchmarks/detect_latency.py

# Every model present x every engine x threads 1,2: table, out/bench/bench.{json,csv,png}.
bench-device: $(VENV)/.test-installed
	$(BIN)/anyedge bench --threads 1,2 --out out/bench

bench-har: $(VENV)/.test-installed
	$(BIN)/python benchmarks/har_accuracy.py
	$(BIN)/python benchmarks/bnn_speed.py

# The check harnesses live in targets/checks/ (developer and CI tools, not in the wheel); they
# import the installed anyedge.
# Cross-compile the portable BNN C library for riscv64 and compare every test window with
# Python under qemu (needs: apt-get install gcc-riscv64-linux-gnu qemu-user).
riscv-check: $(VENV)/.test-installed
	$(BIN)/python targets/checks/bnn_check.py --require-riscv

# The same for aarch64 (Raspberry Pi OS 64-bit, JetPack), plus the Cython kernels' C compiled with
# aarch64-linux-gnu-gcc and checked for NEON cnt popcounts (needs: apt-get install gcc-aarch64-linux-gnu qemu-user).
aarch64-check: $(VENV)/.test-installed
	$(BIN)/python targets/checks/bnn_check.py --require-aarch64 --arch host --arch aarch64 --kernels-c

# The C post-processing library for apps (anyedge export-c) against the SDK on all 150 WIDER images:
# host build and aarch64 under qemu (needs: apt-get install gcc-aarch64-linux-gnu qemu-user).
apps-check: $(VENV)/.test-installed
	$(BIN)/python targets/checks/apps_check.py --require-aarch64

# The whole SDK on emulated boards, compared with this host (targets/checks/board_check.py): a Debian
# root (debootstrap) run under qemu-user, anyedge's wheel cross-built for it and installed the README's
# way; the root, wheels and installs are cached in ~/.cache/anyedge/boards/ (a clean machine downloads
# them from Debian and PyPI). Needs: apt-get install debootstrap qemu-user gcc-aarch64-linux-gnu
# gcc-riscv64-linux-gnu. Timings under emulation say nothing about a board's speed.
BOARD_CHECK_ARGS ?= --images 20
# Raspberry Pi OS 64-bit (Debian 12 arm64, Cortex-A72): every engine x detector, gallery, HAR, run, bench, export-c.
pi-check: $(VENV)/.test-installed
	$(BIN)/python targets/checks/board_check.py --board pi $(BOARD_CHECK_ARGS)

# Debian 13 riscv64 (Zbb): pip gives numpy only, the activity nets on the Zbb kernels, vision refused cleanly.
riscv-board-check: $(VENV)/.test-installed
	$(BIN)/python targets/checks/board_check.py --board riscv64 $(BOARD_CHECK_ARGS)

# Retrain the shipped BNNs (PyTorch CPU; deterministic, byte-identical output).
train-har: $(VENV)/.test-installed
	$(BIN)/python -m pip install -q -e ".[train]"
	$(BIN)/python -m anyedge.converters.train_har --dataset RacketSports
	$(BIN)/python -m anyedge.converters.train_har --dataset BasicMotions

clean:
	rm -rf $(VENV) build out benchmarks/results .pytest_cache
