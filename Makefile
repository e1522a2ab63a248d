# Two commands do all the set-up (see README):
#   make mine   -> creates .venv, installs radmine, runs the main job on the embedded corpus
#   make test   -> creates .venv, installs radmine + test extras, runs the whole test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT ?= out/embedded

.PHONY: mine test install install-test bench notebooks clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch 2.13.0 first: it is the CPU wheel this machine has on disk; a bare "torch" could pull CUDA.
# Without make (or for a GPU): README, "Install with pip".
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

mine: install
	$(BIN)/radmine mine --out $(OUT)
	@echo "HTML report: $(OUT)/report.html"

test: install
	$(BIN)/python -m pytest -q tests

# Re-run the example notebooks in fresh kernels and keep their outputs (embedded synthetic corpus only).
notebooks: install
	$(BIN)/python examples/make_notebooks.py --execute

bench: install
	$(BIN)/pip install -q -e ".[bench]"
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f; done

clean:
	rm -rf $(VENV) out
