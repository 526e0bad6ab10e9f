# Two commands do all the set-up on a fresh clone:
#   make demo   – creates .venv, installs edge-bus, streams the bundled demo clip → runs/demo/
#   make test   – creates .venv, installs edge-bus with its test and training extras, runs the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
TEST_STAMP    := $(VENV)/.test-installed

BENCH_STORE := --benchmark-storage=file://benchmarks/baseline
# setuptools 80+ prints a boxed notice on every editable install of a flat layout (folders named like
# a package may shadow it when run from the checkout); it is not an error, so it is kept off the screen
PIP_INSTALL := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install -q

.PHONY: demo test bench-ci bench-full bench-baseline lint train clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e .
	bash scripts/ensure_system_libs.sh $(BIN)/python
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e ".[test,dev,quantize,train]"
	bash scripts/ensure_system_libs.sh $(BIN)/python
	touch $@ $(RUNTIME_STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/edge-bus stream --source demo --out runs/demo

test: $(TEST_STAMP)
	bash scripts/ensure_test_tools.sh
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory bench-ci

# short benchmark profile + ratio gates + comparison with the committed baseline (CI runs this)
bench-ci: $(TEST_STAMP)
	mkdir -p out
	$(BIN)/python -m pytest benchmarks -p no:cacheprovider --benchmark-enable --bench-profile=short \
	  $(BENCH_STORE) --benchmark-compare --benchmark-compare-fail=median:150% \
	  --benchmark-json=out/bench-ci.json

# everything, longer: writes out/bench-full.json
bench-full: $(TEST_STAMP)
	mkdir -p out
	$(BIN)/python -m pytest benchmarks -p no:cacheprovider --benchmark-enable --bench-profile=full \
	  --benchmark-json=out/bench-full.json

# record a baseline for this machine class (idle; one per CPU class, the newest of the class is compared; then commit benchmarks/baseline/)
bench-baseline: $(TEST_STAMP)
	CI=true $(BIN)/python -m pytest benchmarks -p no:cacheprovider --benchmark-enable --bench-profile=short \
	  $(BENCH_STORE) --benchmark-save=ci-baseline

lint: $(TEST_STAMP)
	$(BIN)/ruff check edge_bus firmware_bridge models tests benchmarks scripts
	$(BIN)/mypy

# End-to-end training, export and INT8 quantisation from ../shared/data (hours on 2 CPU cores):
# make train ARGS=--yes replaces the shipped models; make train ARGS=--smoke checks every step in ~10 min.
train: $(TEST_STAMP)
	bash models/training/reproduce.sh $(ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache .benchmarks
