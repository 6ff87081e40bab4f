# spec3c developer entry points.  Everything creates/reuses .venv first.
#   make demo   simulate a NIRSpec fixed-slit dataset and run spec3c on it (ingest, process, export)
#   make test   run the test suite against the compiled build
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.spec3c-installed
DEMO   := demo

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml setup.py $(wildcard spec3c/_core/*.pyx spec3c/_core/*.pxd)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/spec3c simulate nirspec-fs --output-dir $(DEMO)/input --seed 1
	$(BIN)/spec3c run $(DEMO)/input/*_asn.json --output-dir $(DEMO)/output \
		--steps.extract_1d.override_extract1d=examples/extract1d_nirspec_fs.json
	$(BIN)/spec3c ls $(DEMO)/output/spec3c.store --sources

test: $(STAMP)
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check spec3c tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_slit.py
	$(BIN)/python benchmarks/bench_modes.py

clean:
	rm -rf build $(DEMO) spec3c/_core/*.so spec3c/_core/*.c
