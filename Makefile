# newswire: `make run` starts the service, `make test` runs the whole suite.
# Both create/reuse .venv (upgrading pip first) and install pinned dependencies.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint demo bench-extraction diagram clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/newswire up

test: $(STAMP)
	@$(BIN)/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; rc=0; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

demo: $(STAMP)
	$(BIN)/newswire demo

bench-extraction: $(STAMP)
	$(BIN)/python bench/extraction.py

diagram: docs/architecture.dot
	dot -Tsvg docs/architecture.dot -o docs/img/architecture.svg
	dot -Tpng -Gdpi=100 docs/architecture.dot -o docs/img/architecture.png

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
