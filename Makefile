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

# The quick subset for day-to-day work (< 2 minutes): the suite without the scenario bisects, the
# end-to-end pytest runs and the tests that repeat a measurement many times; no notebooks, no docs.
CHECK_SKIP ?= --ignore=tests/test_bisect_scenarios.py --ignore=tests/test_pytest_plugin.py \
  --deselect=tests/test_bisect.py::test_repeated_bisects_do_not_grow_the_heap \
  --deselect=tests/test_bisect.py::test_bisect_leaves_no_reference_cycles_of_its_own \
  --deselect=tests/test_heap.py::test_repeated_calls_do_not_grow_the_heap \
  --deselect=tests/test_heap.py::test_controlled_types_match_pympler_exactly_and_the_bulk_closely \
  --deselect=tests/test_monitor.py::test_on_demand_snapshot_lists_growing_types_and_sites \
  --deselect=tests/test_monitor.py::test_snapshot_names_what_keeps_the_growing_type_alive \
  --deselect=tests/test_sizes.py::test_leakcheck_magic_reports_the_bytes_each_call_keeps \
  --deselect=tests/test_cli.py::test_bisect_names_the_culprit_and_exits_1_on_a_leak
check: $(STAMP)
	MPLBACKEND=Agg $(PY) -m pytest tests -q -x $(CHECK_SKIP)

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
