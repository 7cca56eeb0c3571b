# Two commands set everything up on a fresh machine:
#   make train   install, then train the embedded default (cube-single; timings: README.md, Measured)
#   make test    install, then run the whole test suite
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# torch first, pinned, with pip (it reads the machine's pip config: on the CPU CI machines this wheel is on local
# disk; an unpinned torch would pull a multi-GB CUDA build). On a GPU machine: make install TORCH_SPEC=torch
# The package and its ~150 dependencies then go in with uv (pip-installed into the venv), which is faster. Both
# byte-compile what they install (uv: --compile-bytecode; it leaves pip's torch, sympy, ... alone): a venv without
# .pyc files costs every process seconds, where PYTHONDONTWRITEBYTECODE=1 makes each import compile sources again.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
# Test processes (pytest-xdist): the suite spends much of its time in subprocesses and simulators, so one
# worker per core roughly halves it on 2 cores. TEST_WORKERS=0 runs it in one process. loadfile: a module's
# tests run on one worker, so its module-scoped fixtures (trained runs, a wheel) are built once, not per worker;
# modules go out longest first (tests/module_seconds.json, read by tests/conftest.py), not xdist's by test count.
TEST_WORKERS ?= auto
# Holds the TORCH_SPEC torch was installed with: another spec reinstalls torch (pip alone keeps an installed
# build that satisfies the name, e.g. the CPU one), then the package on top of it.
SPEC_FILE := $(VENV)/.torch-spec

.PHONY: install train test test-fast lint bench clean FORCE

install: $(STAMP)

$(SPEC_FILE): FORCE
	@if [ "$$(cat $@ 2>/dev/null)" != "$(TORCH_SPEC)" ]; then \
		set -e; test -x $(PY) || $(PYTHON) -m venv $(VENV); \
		$(PY) -m pip install -q --upgrade pip; \
		if $(PY) -m pip show -q torch 2>/dev/null; then \
			$(PY) -m pip install -q --force-reinstall --no-deps "$(TORCH_SPEC)"; fi; \
		$(PY) -m pip install -q "$(TORCH_SPEC)"; \
		echo "$(TORCH_SPEC)" > $@; fi

$(STAMP): pyproject.toml $(SPEC_FILE)
	@# OSMesa: offscreen MuJoCo rendering for evaluation videos on machines without a GPU (as root only).
	-@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! ldconfig -p | grep -q libOSMesa; then \
		apt-get update -qq && apt-get install -y -qq libosmesa6 >/dev/null; fi
	test -x $(VENV)/bin/uv || $(PY) -m pip install -q uv
	$(VENV)/bin/uv pip install -q --python $(PY) --compile-bytecode -e ".[dev]"
	touch $(STAMP)

train: install
	$(VENV)/bin/rql-train experiment=quickstart $(ARGS)

# pytest exits 5 when it collects no test: make fails on any non-zero exit, that one included.
test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(ARGS)

# The edit-test loop: every test but those marked slow (real simulators, subprocesses; over ~5 s each).
test-fast: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not slow" $(ARGS)

lint: install
	$(VENV)/bin/ruff check src tests benchmarks examples && $(VENV)/bin/ruff format --check src tests benchmarks examples

bench: install
	$(PY) benchmarks/throughput.py --preset quickstart
	$(PY) benchmarks/throughput.py --preset paper-manip
	$(PY) benchmarks/throughput.py --preset paper-loco

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
