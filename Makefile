# The two set-up commands of the README: `make demo` and `make test`.
# Both bootstrap .venv from the registries on first use; nothing else is needed.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test lint venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Until `ksentinel demo` lands, the demo runs the official Kaltura client against the embedded platform.
demo: $(STAMP)
	$(BIN)/python examples/official_client_flow.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples contracts load dashboards probes
	$(BIN)/ruff format --check src tests benchmarks examples contracts load dashboards probes

test: $(STAMP) lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
