# Two commands: `make run` starts the whole system, `make test` runs the tests.
# Both create or refresh .venv from pyproject.toml.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/weibao run

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python bench/lifecycle.py
	$(VENV)/bin/python bench/projections.py
	$(VENV)/bin/python bench/api_steps.py

clean:
	rm -rf $(VENV) .weibao
