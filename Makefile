# carefabric: the two commands are `make demo` and `make test`; both build .venv when missing.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# make runs the sandbox: the PHI token key may fall back to the sandbox key (carefabric.phi).
export CAREFABRIC_SANDBOX ?= 1

.PHONY: venv demo test test-fast chaos airflow sandbox bench lint clean

venv: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -r requirements.txt -c constraints.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: venv
	$(PY) tools/demo.py $(DEMO_ARGS)

test: venv
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

# The fault suite alone (also part of `make test`): faults injected against the sandbox, judged
# from the ERP's own records with its de-duplication off; SQLite and PostgreSQL; a few minutes.
chaos: venv
	$(PY) -m pytest -n 2 -m chaos $(PYTEST_ARGS)

airflow: venv
	bash tools/airflow_standalone.sh

sandbox: venv
	$(PY) -m sandbox serve

bench: venv
	$(PY) tools/bench.py

# ruff, then mypy over include/, dags/, plugins/ and tools/ ([tool.mypy] in pyproject.toml): both clean.
lint: venv
	$(VENV)/bin/ruff check .
	$(PY) -m mypy

clean:
	rm -rf data airflow_home
