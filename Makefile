# The two set-up commands of the README. Both create or refresh .venv first, so a fresh
# machine needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Rebuilt whenever the project's dependencies change.
INSTALLED := $(VENV)/.installed
# The screen's one browser dependency (ECharts), pinned by package-lock.json, served by `cityops api`.
WEB := infra/api/web
WEB_INSTALLED := $(WEB)/node_modules/.installed

.PHONY: demo test tools clean

demo: $(INSTALLED) $(WEB_INSTALLED)
	$(BIN)/cityops demo

test: $(INSTALLED) $(WEB_INSTALLED) tools
	$(BIN)/ruff check agents cityops devtools infra pipeline schemas scripts tests
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(WEB_INSTALLED): $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund --silent
	touch $@

# promtool and amtool check the alert rules and routing (tests/integration/test_alert_rules.py);
# Chromium and CJK fonts show the screen to Playwright (tests/integration/test_screen.py) and print
# the bulletin's PDF; pdftoppm (poppler-utils) turns its pages into PNG (tests/integration/test_bulletin.py).
tools:
	@command -v promtool >/dev/null && command -v amtool >/dev/null && command -v chromium >/dev/null && \
	  command -v pdftoppm >/dev/null && test -d /usr/share/fonts/opentype/noto || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager chromium fonts-noto-cjk poppler-utils >/dev/null)

clean:
	rm -rf $(VENV) var build *.egg-info $(WEB)/node_modules
