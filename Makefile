# Two commands on a fresh machine with only Python 3 and make:
#   make run   - create .venv, install colossim, print the seed report
#   make test  - create .venv with the test extras, run the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test report clean

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

test: $(TEST_STAMP)
	$(BIN)/python -m pytest

report: $(STAMP)
	$(BIN)/colossim report --html report.html

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
