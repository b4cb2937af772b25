# Two commands do all set-up on a fresh machine: `make demo` (grade the bundled example
# submissions of ml-hw6 and print their scores) and `make test` (the whole test suite).
PYTHON ?= python3
OUT ?= out

.PHONY: setup demo test validate
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

test: setup
	$(PYTHON) -m pytest tests -q

validate: setup
	@for a in $$(ls assignments); do $(PYTHON) -m mlgrade.cli validate $$a || exit 1; done
