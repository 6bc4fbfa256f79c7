# The two set-up commands of the README. Both create or refresh .venv first, so a fresh
# machine needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Rebuilt whenever the project's dependencies change.
INSTALLED := $(VENV)/.installed

.PHONY: demo test tools clean

demo: $(INSTALLED)
	$(BIN)/cityops demo

test: $(INSTALLED) tools
	$(BIN)/ruff check agents cityops infra pipeline schemas scripts tests
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# promtool and amtool check the alert rules and routing (tests/integration/test_alert_rules.py).
tools:
	@command -v promtool >/dev/null && command -v amtool >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager >/dev/null)

clean:
	rm -rf $(VENV) var build *.egg-info
