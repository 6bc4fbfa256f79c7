# The two set-up commands of the README. Both create or refresh .venv first, so a fresh
# machine needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Rebuilt whenever the project's dependencies change.
INSTALLED := $(VENV)/.installed

.PHONY: demo test clean

demo: $(INSTALLED)
	$(BIN)/cityops demo

test: $(INSTALLED)
	$(BIN)/ruff check agents infra pipeline schemas scripts tests
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) var build *.egg-info
