# Two commands do all set-up on a fresh machine: `make demo` (grade the bundled example
# submissions of ml-hw6 and print their scores) and `make test` (the whole test suite).
PYTHON ?= python3
OUT ?= out

.PHONY: setup demo test test-quick validate
setup:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	$(PYTHON) -m mlgrade.cli setup-worker

demo: setup
	@mkdir -p $(OUT)/ml-hw6
	@for d in examples/ml-hw6/*/; do \
		name=$$(basename $$d); \
		$(PYTHON) -m mlgrade.cli run ml-hw6 $$d --results $(OUT)/ml-hw6/$$name.json | tail -n 4; \
	done

# the full run: every layer, in one process per CPU (pytest-xdist), the 25 slowest tests listed at
# the end (what CI runs)
test: setup
	$(PYTHON) -m pytest tests -q -n auto --durations=25

# the quick loop while working: the slow layers left out by their markers (Docker images, fresh
# venvs, Dask clusters, full mutant sweeps); `make test` before pushing
test-quick:
	$(PYTHON) -m pytest tests -q -n auto --durations=10 -m "not docker and not fresh_venv and not cluster and not mutants"

validate: setup
	@for a in $$(ls assignments); do $(PYTHON) -m mlgrade.cli validate $$a || exit 1; done
