# mmbot: two commands on a fresh machine: `make demo`, `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# the suite runs on both cores of the target machine (pytest-xdist); TEST_WORKERS=0 for one process
TEST_WORKERS ?= 2

.PHONY: install demo ui test lint security audit bench gate-table update-golden clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv==0.13.8
	$(UV) pip sync -q --compile-bytecode --python $(PY) requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps -e .
	touch $(STAMP)

# The project's own bytecode too, as a wheel install would write it (the editable install
# does not, and PYTHONDONTWRITEBYTECODE stops Python writing it on import): without it every
# `mmbot run` compiles its 43 modules again: 6 % of the instructions of a run on the real
# capture (callgrind: 7.82 G without the .pyc files, 7.35 G with them). Files already
# compiled are skipped, so this is cheap on every `make`.
PACKAGES := bot gates reports flows
install: $(STAMP)
	$(PY) -m compileall -q $(PACKAGES)

# the release flow on the demo profile: shadow, dry-run compare, a simulated 24 h soak,
# tuning and canary, approving itself (the demo profile allows it); reports under ./artifacts
# Prefect's ephemeral API: no analytics (the network may be closed) and time to start on
# a busy machine (its default is 20 s)
demo: install
	PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=180 \
		$(VENV)/bin/mmbot demo --release --approve auto

# A local Prefect server (UI on http://127.0.0.1:$(UI_PORT)) with every deployment of
# prefect.yaml deployed and a process worker running them; Ctrl-C stops worker and server.
# State (database, logs) stays in $(UI_HOME) between sessions.
UI_PORT ?= 4200
UI_HOME ?= $(CURDIR)/artifacts/prefect-ui
UI_API   = http://127.0.0.1:$(UI_PORT)/api
ui: install
	@mkdir -p $(UI_HOME); \
	export PREFECT_HOME=$(UI_HOME) PREFECT_SERVER_ANALYTICS_ENABLED=false \
	  PREFECT_API_URL=$(UI_API) PREFECT_UI_API_URL=$(UI_API); \
	$(VENV)/bin/prefect server start --host 127.0.0.1 --port $(UI_PORT) --analytics-off \
	  > $(UI_HOME)/server.log 2>&1 & server=$$!; \
	trap 'kill $$server 2>/dev/null' EXIT INT TERM; \
	until $(PY) -c "import urllib.request as u; u.urlopen('$(UI_API)/health', timeout=2)" \
	  2>/dev/null; do kill -0 $$server 2>/dev/null || { cat $(UI_HOME)/server.log; exit 1; }; \
	  sleep 1; done; \
	$(VENV)/bin/prefect work-pool inspect mmbot-local >/dev/null 2>&1 || \
	  $(VENV)/bin/prefect work-pool create mmbot-local --type process; \
	$(VENV)/bin/prefect gcl inspect mmbot-live >/dev/null 2>&1 || \
	  $(VENV)/bin/prefect gcl create mmbot-live --limit 1; \
	$(VENV)/bin/prefect --no-prompt deploy --all && \
	echo "Prefect UI: http://127.0.0.1:$(UI_PORT)  (Ctrl-C stops the worker and the server)" && \
	$(VENV)/bin/prefect worker start --pool mmbot-local

lint: install
	$(VENV)/bin/ruff check bot gates reports flows tests benchmarks
	$(VENV)/bin/mypy bot gates reports

# bandit: no medium or high finding (each `# nosec` says why on the line above it);
# detect-secrets: no credential in any tracked file (test fixtures carry an allowlist
# pragma; the golden HTML reports are excluded because plotly embeds its data as base64).
security: install
	$(VENV)/bin/bandit -q -r bot gates reports flows --severity-level medium
	git ls-files -z | xargs -0 $(VENV)/bin/detect-secrets-hook \
	  --exclude-files '^tests/golden/.*\.html$$' --exclude-files '\.png$$'

# The lock file against a vulnerability service (OSV by default; PYPI_AUDIT_SERVICE=pypi for
# PyPI's). Needs that service on the network: this project's CI machine reaches none.
PYPI_AUDIT_SERVICE ?= osv
audit: install
	$(VENV)/bin/pip-audit -r requirements.lock --no-deps --disable-pip \
	  --vulnerability-service $(PYPI_AUDIT_SERVICE) --progress-spinner off

# pytest exits 5 when it collected no test: a failure, not a pass. The check lives in
# the recipe because make reports any failed recipe as its own exit 2.
# worksteal: an idle worker takes tests queued on the busy one (a clean-clone run took
# 575 s against 606 s with the default `load`, on more tests).
test: lint security
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal --cov --cov-report=term $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests ran" >&2; exit 1; fi; exit $$rc

bench: install
	$(PY) benchmarks/sim_throughput.py
	$(PY) benchmarks/real_replay.py
	$(PY) benchmarks/tick_to_quote.py
	$(PY) benchmarks/synth_throughput.py

# The README's table of release candidates and the checks that catch them (about a minute).
gate-table: install
	$(PY) -m tests.e2e.candidates

update-golden: install
	MMBOT_UPDATE_GOLDEN=1 $(PY) -m pytest tests/golden -q

# Regenerate the lock file on purpose after changing pyproject.toml.
lock: install
	$(UV) pip compile -q pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

# Everything the README's commands write (tests/unit/test_readme_cli.py holds the list to it)
CLEAN_OUTPUTS := artifacts runs data state audit

clean:
	rm -rf $(VENV) $(CLEAN_OUTPUTS) .pytest_cache .mypy_cache .ruff_cache .coverage
	find $(PACKAGES) tests benchmarks -name __pycache__ -type d -prune -exec rm -rf {} +
