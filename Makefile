# `make run` installs Baton into .venv; `make test`, `lint`, `fmt` and `bench` add the dev tools.
# Each install is redone when pyproject.toml is newer than it. The installer is uv when it can be
# had (on PATH, or fetched once from the package registry into .venv/uv): a first `make run` then
# takes seconds rather than a minute. Without it, pip.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(VENV)/uv/bin/uv

.PHONY: run test lint fmt bench migration clean

# $(1): what to install, e.g. `.` or `.[dev]`.
define install
	@echo "Installing $(1) into $(VENV)…" >&2
	@test -x $(BIN)/python || $(PY) -m venv --without-pip $(VENV)
	@uv=$$(command -v uv || true); \
	if [ -z "$$uv" ]; then \
	  test -x $(UV) || $(PY) -m pip install --quiet --target $(VENV)/uv uv >/dev/null 2>&1; \
	  if [ -x $(UV) ]; then uv=$(UV); fi; \
	fi; \
	if [ -n "$$uv" ]; then \
	  "$$uv" pip install --quiet --python $(BIN)/python -e '$(1)'; \
	else \
	  $(BIN)/python -m ensurepip --upgrade >/dev/null && $(BIN)/python -m pip install --quiet -e '$(1)'; \
	fi
	@touch $@
endef

$(VENV)/.installed: pyproject.toml
	$(call install,.)

$(VENV)/.dev-installed: pyproject.toml
	$(call install,.[dev])

run: $(VENV)/.installed
	@$(BIN)/baton run $(ARGS)

test: $(VENV)/.dev-installed
	$(BIN)/ruff check bot agents orchestration storage tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q $(ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check bot agents orchestration storage tests bench
	$(BIN)/ruff format --check bot agents orchestration storage tests bench
	$(BIN)/mypy

fmt: $(VENV)/.dev-installed
	$(BIN)/ruff format bot agents orchestration storage tests bench
	$(BIN)/ruff check --fix bot agents orchestration storage tests bench

bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench

# The next schema revision from what storage/models.py adds: make migration m="outbox table"
migration: $(VENV)/.installed
	$(BIN)/python -m storage.migrations.new "$(m)" $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
