# Two commands on a fresh machine: `make run` (install and serve) and `make test` (install and test);
# `make demo` shows it working without a cluster.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run test lint bench demo clean

$(BIN)/.installed: requirements.txt requirements-dev.txt requirements-s3.txt requirements-moto.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -r requirements-s3.txt -r requirements-moto.txt
	touch $@

run: $(BIN)/.installed
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: $(BIN)/.installed
	$(BIN)/pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/python -m mypy

# tasklogs, the collector and a simulated cluster with Argo workflows that keep logging; Ctrl-C stops all.
demo: $(BIN)/.installed
	$(BIN)/python -m demo

bench: $(BIN)/.installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
