# spec3c developer entry points.  Everything creates/reuses .venv first.
#   make demo   simulate a NIRSpec fixed-slit dataset and run spec3c on it (ingest, process, export)
#   make lint   ruff and mypy
#   make test   lint, then the test suite against the compiled build, with the
#               reference pipeline (jwst, in its own .venv-jwst) for tests/oracle
#   make soak   SOAK_TRIALS (default 50) seeded kill-and-rerun trials (tests/reliability/soak.py)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.spec3c-installed
DEMO   := demo
# the reference pipeline runs in its own venv; spec3c never imports jwst
REF_VENV  := .venv-jwst
REF_STAMP := $(REF_VENV)/.jwst-installed

SOAK_TRIALS ?= 50
# pytest-xdist processes for `make test` (a test file stays on one; the oracle's shared jwst runs are made once);
# a worker that crashes ends the run at once (xdist's loadfile scheduling waited forever after replacing one);
# the 25 slowest tests are listed, so a CI log shows where the suite's time goes
TEST_WORKERS ?= 2

.PHONY: demo test lint bench soak clean bytecode

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml setup.py $(wildcard spec3c/_core/*.pyx spec3c/_core/*.pxd)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

# spec3c's modules byte-compiled (only those changed since): pip does not compile an editable
# install, and where PYTHONDONTWRITEBYTECODE is set nothing else does, so every spec3c command
# (and every worker spawned) would compile ~200 modules from source (~0.4 s a start)
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q spec3c

# jwst==oracle.JWST_VERSION, installed once (about a minute) and reused
$(REF_STAMP): Makefile
	PYTHONPATH=benchmarks $(PYTHON) -c 'import oracle; oracle.ensure_jwst_venv("$(REF_VENV)")'
	touch $(REF_STAMP)

demo: bytecode
	rm -rf $(DEMO)
	$(BIN)/spec3c simulate nirspec-fs --output-dir $(DEMO)/input --seed 1
	$(BIN)/spec3c run $(DEMO)/input/*_asn.json --output-dir $(DEMO)/output \
		--steps.extract_1d.override_extract1d=examples/extract1d_nirspec_fs.json
	$(BIN)/spec3c ls $(DEMO)/output/spec3c.store --sources

test: lint bytecode $(REF_STAMP)
	SPEC3C_JWST_PYTHON=$(CURDIR)/$(REF_VENV)/bin/python OMP_NUM_THREADS=2 $(BIN)/python -m pytest -q \
		-n $(TEST_WORKERS) --dist loadfile --max-worker-restart 0 --durations=25

lint: $(STAMP)
	$(BIN)/ruff check spec3c tests benchmarks
	$(BIN)/mypy spec3c

# the benchmarks also need the `bench` extra (psutil)
bench: bytecode
	$(BIN)/python -m pip install -q -e ".[test,bench]"
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_slit.py
	$(BIN)/python benchmarks/bench_modes.py

# SIGKILL spec3c run/ingest/process/export at random moments, re-run, compare with an uninterrupted run
soak: bytecode
	OMP_NUM_THREADS=2 $(BIN)/python tests/reliability/soak.py --trials $(SOAK_TRIALS)

clean:
	rm -rf build $(DEMO) spec3c/_core/*.so spec3c/_core/*.c
