# mmbot: two commands on a fresh machine: `make demo`, `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# the suite runs on both cores of the target machine (pytest-xdist); TEST_WORKERS=0 for one process
TEST_WORKERS ?= 2

.PHONY: install demo test lint bench gate-table update-golden clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv==0.13.8
	$(UV) pip sync -q --compile-bytecode --python $(PY) requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# the release flow on the demo profile: shadow, dry-run compare, a simulated 24 h soak,
# tuning and canary, approving itself (the demo profile allows it); reports under ./artifacts
# Prefect's ephemeral API: no analytics (the network may be closed) and time to start on
# a busy machine (its default is 20 s)
demo: install
	PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=180 \
		$(VENV)/bin/mmbot demo --release --approve auto

lint: install
	$(VENV)/bin/ruff check bot gates reports flows tests benchmarks
	$(VENV)/bin/mypy bot gates reports

# pytest exits 5 when it collected no test: a failure, not a pass. The check lives in
# the recipe because make reports any failed recipe as its own exit 2.
test: lint
	$(PY) -m pytest -n $(TEST_WORKERS) --cov --cov-report=term $(PYTEST_ARGS); rc=$$?; \
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
CLEAN_OUTPUTS := artifacts runs data

clean:
	rm -rf $(VENV) $(CLEAN_OUTPUTS) .pytest_cache .mypy_cache .ruff_cache .coverage
