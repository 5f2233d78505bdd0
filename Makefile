# Two commands on a fresh machine with only Python 3 and make:
#   make run   - create .venv, install colossim, print the seed report
#   make test  - create .venv with the test extras (and Debian's chromium for the browser tests), run the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

# Debian's Chromium drives the browser tests (tests/browser): installed when missing where apt-get
# runs as root; elsewhere those tests skip and say why (CI sets COLOSSIM_REQUIRE_BROWSER=1: they fail).
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test report clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP) $@

run: $(STAMP)
	$(BIN)/colossim report

chromium:
	@if [ ! -x "$(CHROMIUM)" ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's chromium for the browser tests"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } || \
		echo "could not install chromium: the browser tests will skip"; \
	fi

test: $(TEST_STAMP) chromium
	$(BIN)/python -m pytest

report: $(STAMP)
	$(BIN)/colossim report --html report.html

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
