# Two commands do all set-up: `make lab` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LAB_ARGS ?=

.PHONY: lab test install bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml leakkit/_heapscan.c leakkit/_containerscan.c
	$(PY) -m pip install --quiet -e '.[lab,dev,parquet,realworld]'
	$(PY) -m ipykernel install --sys-prefix --name leakkit --display-name "Python (leakkit)"
	touch $(STAMP)

install: $(STAMP)

# JupyterLab refuses to run as root unless told: containers and CI machines often are root.
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(ROOT_ARGS) $(LAB_ARGS)

test: $(STAMP)
	MPLBACKEND=Agg $(PY) -m pytest tests
	MPLBACKEND=Agg $(PY) -m pytest --nbval-lax --nbval-current-env notebooks

bench: $(STAMP)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/summary.py

clean:
	rm -rf $(VENV) build *.egg-info
