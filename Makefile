# The README's Quick start: `make demo` and `make test` each work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=

.PHONY: demo test setup bench-features clean

demo:  ## set up .venv and run the whole pipeline on the built-in synthetic dataset
	PYTHON=$(PYTHON) VENV=$(VENV) ./scripts/setup.sh
	$(VENV)/bin/earmark demo

test:  ## set up .venv with the test tools and run the whole test suite (slow tests included)
	PYTHON=$(PYTHON) VENV=$(VENV) ./scripts/setup.sh test
	$(VENV)/bin/python -m pytest -n auto $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

setup:
	PYTHON=$(PYTHON) VENV=$(VENV) ./scripts/setup.sh test

bench-features:  ## extraction speed vs the librosa pipeline (see BENCHMARKS.md)
	$(VENV)/bin/python benchmarks/features.py

clean:
	rm -rf earmark-demo .pytest_cache
