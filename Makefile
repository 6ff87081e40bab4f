# spec3c developer entry points.  Everything creates/reuses .venv first.
#   make demo   simulate a NIRSpec fixed-slit dataset, ingest it, summarise the store
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
	$(BIN)/spec3c ingest $(DEMO)/input/*_asn.json --store $(DEMO)/store
	$(BIN)/spec3c ls $(DEMO)/store --sources

test: $(STAMP)
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check spec3c tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ingest.py

clean:
	rm -rf build $(DEMO) spec3c/_core/*.so spec3c/_core/*.c
