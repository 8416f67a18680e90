# Two commands: `make run` starts the whole system, `make test` runs the tests.
# Both create or refresh .venv from pyproject.toml.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test test-unit test-workflows test-e2e bench clean venv chromium

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/weibao run

test: $(STAMP) chromium
	$(VENV)/bin/python -m pytest -q

# The layers on their own: pure rules (seconds, no server), workflows on the time-skipping
# server, and end to end (API, processes, PostgreSQL, the browser); tests/faults restarts
# PostgreSQL.
test-unit: $(STAMP)
	$(VENV)/bin/python -m pytest -q tests/unit

test-workflows: $(STAMP)
	$(VENV)/bin/python -m pytest -q tests/workflows

test-e2e: $(STAMP) chromium
	$(VENV)/bin/python -m pytest -q tests/e2e tests/faults

# The console's browser tests drive Debian's Chromium (Playwright downloads no browser here).
CHROMIUM ?= /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && apt-get install -y -q chromium fonts-wqy-microhei; \
	  else \
	    echo "make: Chromium is missing ($(CHROMIUM)): run 'sudo apt-get update && sudo apt-get install -y chromium fonts-wqy-microhei'" >&2; \
	    exit 1; \
	  fi; }

bench: $(STAMP)
	$(VENV)/bin/python bench/lifecycle.py
	$(VENV)/bin/python bench/projections.py
	$(VENV)/bin/python bench/api_steps.py
	$(VENV)/bin/python bench/capacity.py --stages 1000 --sample 20
	$(VENV)/bin/python bench/escalation_lag.py
	$(VENV)/bin/python bench/mail_send.py
	$(VENV)/bin/python bench/console.py
	$(VENV)/bin/python bench/observability.py
	$(VENV)/bin/python bench/store_ceiling.py

clean:
	rm -rf $(VENV) .weibao
