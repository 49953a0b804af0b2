# Each target creates .venv from pyproject.toml when it is missing or older than it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint fmt bench migration clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/baton run $(ARGS)

test: $(VENV)/.installed
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

bench: $(VENV)/.installed
	$(BIN)/python -m bench

# The next schema revision from what storage/models.py adds: make migration m="outbox table"
migration: $(VENV)/.installed
	$(BIN)/python -m storage.migrations.new "$(m)" $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
