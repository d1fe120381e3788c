# The two commands: `make demo` runs the demo experiment, `make test` runs the test suite.
# Both build what they need first: the harness venv, the pinned grading venv and (where possible) bubblewrap.
PYTHON ?= python3
HARNESS := .venvs/harness
GRADING := .venvs/grading

.PHONY: demo test test-slow setup bench clean-venvs

demo: setup
	$(HARNESS)/bin/python -m spark_eval experiment=demo

test: setup
	$(HARNESS)/bin/python -m pytest

test-slow: setup
	$(HARNESS)/bin/python -m pytest -m slow

bench: setup
	$(HARNESS)/bin/python bench/bench_executor.py

setup: $(HARNESS)/.ready $(GRADING)/.ready
	@bash scripts/install_sandbox.sh

$(HARNESS)/.ready: pyproject.toml
	$(PYTHON) -m venv $(HARNESS)
	$(HARNESS)/bin/pip install -q --upgrade pip
	$(HARNESS)/bin/pip install -q -e '.[test]'
	touch $@

$(GRADING)/.ready: requirements/grading.txt
	$(PYTHON) -m venv $(GRADING)
	$(GRADING)/bin/pip install -q --upgrade pip
	$(GRADING)/bin/pip install -q -r requirements/grading.txt
	touch $@

clean-venvs:
	rm -rf .venvs
