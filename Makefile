# posedistill developer entry points. Each target creates the virtual environment it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 2

.PHONY: venv test demo bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[train,dev]"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check posedistill tests benchmarks
	$(PY) -m pytest -q tests

# The main job on its built-in default: synthetic whole-body data -> training -> evaluation.
demo: $(STAMP)
	$(PY) -m posedistill demo

# Speed and size benchmarks; each script prints a table and writes benchmarks/results/*.json.
bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

lint: $(STAMP)
	$(PY) -m ruff check posedistill tests benchmarks
	$(PY) -m ruff format --check posedistill tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
