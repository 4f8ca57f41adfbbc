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

# The embedded reference platform, contract, load, probe and dashboards; one report under reports/.
demo: $(STAMP)
	$(BIN)/ksentinel demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples contracts load dashboards probes
	$(BIN)/ruff format --check src tests benchmarks examples contracts load dashboards probes

# Two pytest-xdist workers, one test file each at a time (module fixtures such as the demo run and the
# fault matrix run once); `make test PYTEST_WORKERS=0` runs serially.
PYTEST_WORKERS ?= 2

test: $(STAMP) lint
	$(BIN)/pytest $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
