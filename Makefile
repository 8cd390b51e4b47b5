# Two commands do all set-up: `make lab` and `make test` (see README.md). `make check` is the quick
# subset for day-to-day work (< 2 minutes); `make docs` builds the site into site/.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LAB_ARGS ?=

.PHONY: lab test check docs docs-serve install bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml leakkit/_heapscan.c
	$(PY) -m pip install --quiet -e '.[lab,dev,parquet,docs]'
	$(PY) -m ipykernel install --sys-prefix --name leakkit --display-name "Python (leakkit)"
	touch $(STAMP)

install: $(STAMP)

# JupyterLab refuses to run as root unless told: containers and CI machines often are root.
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root)

# Running a notebook must not dirty the checkout: git sees notebooks through nbstripout (outputs,
# execution counts and the kernel's language details stripped), installed as this clone's filter.
lab: $(STAMP)
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	  $(VENV)/bin/nbstripout --install --attributes .gitattributes && \
	  git config filter.nbstripout.extrakeys "metadata.language_info"; \
	fi
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(ROOT_ARGS) $(LAB_ARGS)

test: $(STAMP)
	MPLBACKEND=Agg $(PY) -m pytest tests
	MPLBACKEND=Agg $(PY) -m pytest --nbval-lax --nbval-current-env notebooks
	$(MAKE) --no-print-directory docs

# The quick subset: every test module but the slow end-to-end ones (marked `slow`), no notebooks.
check: $(STAMP)
	MPLBACKEND=Agg $(PY) -m pytest tests -q -m "not slow"

# The docs site (mkdocs-material + mkdocstrings): warnings are errors.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

bench: $(STAMP)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/summary.py

clean:
	rm -rf $(VENV) build site *.egg-info
