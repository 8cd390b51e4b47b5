# Two commands do all set-up: `make lab` and `make test` (see README.md). `make check` is the quick
# subset for day-to-day work (< 2 minutes); `make docs` builds the site into site/.
#
# One venv per interpreter: `.venv` for the default python3, `.venv-3.12` for
# `make test PYTHON=python3.12` (any path works: PYTHON=/opt/py/bin/python3.13), so a venv made
# for one Python is never reused for another. A venv found running another version is made again.
PYTHON ?= python3
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
ifeq ($(PYVER),)
$(error '$(PYTHON)' does not run: set PYTHON to a CPython 3.10-3.13, e.g. make test PYTHON=python3.12)
endif
VENV   ?= $(if $(filter python3,$(PYTHON)),.venv,.venv-$(PYVER))
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXTRAS ?= lab,dev,parquet,realworld,docs,servers,workers,fleet
LAB_ARGS ?=

ifneq ($(wildcard $(PY)),)
VENV_VER := $(shell $(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
ifneq ($(VENV_VER),$(PYVER))
$(info leakkit: $(VENV) runs Python '$(VENV_VER)', not $(PYVER) ($(PYTHON)): making it again)
$(shell rm -rf $(VENV))
endif
endif

# Other supported CPythons `make test` also checks, one line "X.Y PATH" each (.ci/pythons finds
# them on PATH and under pyenv). None when PYTHON is given: `make test PYTHON=...` tests that one.
OTHERS := $(if $(filter command line environment,$(origin PYTHON)),,$(shell bash .ci/pythons --except $(PYVER) | cut -d' ' -f2))

# The compatibility pass on the other interpreters: what differs per version (tests/test_compat.py),
# the project's scenario bisects (sync, async, threaded), bisect in-process, heap_summary against
# pympler, trace, watch, the monitor, the probes, and one notebook (the async crawler story). The
# whole suite and every notebook run on $(PYTHON). Left out there: bisect's own-cycles check with
# the whole heap unfrozen (4-9 minutes a run; not version-specific, it runs on $(PYTHON)).
COMPAT_TESTS ?= tests/test_compat.py tests/test_bisect_scenarios.py tests/test_bisect.py tests/test_heap.py \
                tests/test_trace.py tests/test_watch.py tests/test_monitor.py tests/test_probes.py \
                tests/test_monitor_fork.py tests/test_monitor_rate.py \
                tests/test_phases.py tests/test_watch_tree.py \
                tests/test_fleet_writer.py tests/test_export_metrics.py tests/test_fleet.py \
                tests/test_attach.py tests/test_attach_units.py
COMPAT_SKIP ?= test_bisect_leaves_no_reference_cycles_of_its_own
COMPAT_NOTEBOOK ?= notebooks/02-crawler-worker-case-study.ipynb

.PHONY: lab test suite compat check docs docs-serve install bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml leakkit/probes/_heapscan.c leakkit/probes/_containerscan.c leakkit/probes/_stackcut.c
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	$(PY) -m leakkit.frontends.agent.pth  # LEAKKIT_AGENT=1 opt-in: a wheel ships it, an editable install does not
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

# Everything on $(PYTHON), then the compatibility pass on each other interpreter; fails when any
# fails, after running them all.
test:
	@failed=""; \
	$(MAKE) --no-print-directory suite PYTHON='$(PYTHON)' VENV='$(VENV)' || failed="$$failed $(PYVER)"; \
	for py in $(OTHERS); do \
	  $(MAKE) --no-print-directory compat PYTHON="$$py" || failed="$$failed $$py"; \
	done; \
	if [ -n "$$failed" ]; then echo "leakkit: tests failed on:$$failed"; exit 1; fi

# The tests, the notebooks and the docs: all three run, then it fails if any failed (a failing
# test must not hide a failing notebook).
suite: $(STAMP)
	@failed=""; \
	MPLBACKEND=Agg $(PY) -m pytest tests || failed="$$failed tests"; \
	MPLBACKEND=Agg $(PY) -m pytest --nbval-lax --nbval-current-env notebooks || failed="$$failed notebooks"; \
	$(MAKE) --no-print-directory docs || failed="$$failed docs"; \
	if [ -n "$$failed" ]; then echo "leakkit: failed on $(PYVER):$$failed"; exit 1; fi

# The quick subset for day-to-day work (< 2 minutes on two idle cores): the suite without the
# scenario and real-world bisects, the end-to-end pytest runs (the plugin, --leakcheck-all, the
# real suites), the bisects of stdlib/third-party targets, and the tests that repeat a measurement
# many times or wait on wall time; two xdist workers (CHECK_JOBS); no notebooks, no docs.
CHECK_JOBS ?= 2
CHECK_SKIP ?= --ignore=tests/test_bisect_scenarios.py --ignore=tests/test_pytest_plugin.py \
  --ignore=tests/test_realworld.py --ignore=tests/realworld --ignore=tests/test_leakcheck_all.py \
  --ignore=tests/test_leakcheck_realsuite.py --ignore=tests/test_bisect_targets.py --ignore=tests/test_fleet_e2e.py \
  --ignore=tests/servers --ignore=tests/test_attach.py \
  --deselect=tests/test_bisect.py::test_repeated_bisects_do_not_grow_the_heap \
  --deselect=tests/test_bisect.py::test_bisect_leaves_no_reference_cycles_of_its_own \
  --deselect=tests/test_bisect_classes.py::test_a_cache_that_fills_for_hundreds_of_calls_is_not_a_leak \
  --deselect=tests/test_compat.py::test_bisect_freezes_the_warmed_up_heap_on_every_version \
  --deselect=tests/test_compat.py::test_no_leakkit_call_after_asyncio_use_hangs_the_collector \
  --deselect=tests/test_compat.py::test_bisect_respects_a_users_own_freeze \
  --deselect=tests/test_heap.py::test_repeated_calls_do_not_grow_the_heap \
  --deselect=tests/test_heap.py::test_controlled_types_match_pympler_exactly_and_the_bulk_closely \
  --deselect=tests/test_magics.py::test_function_api_and_magic_agree_on_a_leak \
  --deselect=tests/test_monitor.py::test_on_demand_snapshot_lists_growing_types_and_sites \
  --deselect=tests/test_monitor.py::test_snapshot_names_what_keeps_the_growing_type_alive \
  --deselect=tests/test_sizes.py::test_leakcheck_magic_reports_the_bytes_each_call_keeps \
  --deselect=tests/test_trace_hardening.py::test_fast_functions_get_checkpoints_by_wall_time_and_a_right_verdict \
  --deselect=tests/test_cli.py::test_bisect_names_the_culprit_and_exits_1_on_a_leak \
  --deselect=tests/test_notebooks.py::test_a_progress_bar_in_the_lab_is_a_widget_with_no_warning \
  --deselect=tests/test_notebooks.py::test_an_executed_notebook_strips_back_to_the_committed_file
check: $(STAMP)
	MPLBACKEND=Agg $(PY) -m pytest tests -q -x $(if $(filter-out 0 1,$(CHECK_JOBS)),-n $(CHECK_JOBS)) $(CHECK_SKIP)

# The docs site (mkdocs-material + mkdocstrings): warnings are errors.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

compat: EXTRAS = dev,parquet,fleet
compat: $(STAMP)
	@echo "leakkit: compatibility pass on Python $(PYVER) ($(PYTHON))"
	MPLBACKEND=Agg $(PY) -m pytest -q $(COMPAT_TESTS) $(if $(COMPAT_SKIP),-k 'not $(COMPAT_SKIP)')
	MPLBACKEND=Agg $(PY) -m pytest -q --nbval-lax --nbval-current-env $(COMPAT_NOTEBOOK)

# `make test` while every core is kept busy (tests/under_load.py), LOAD_RUNS times in a row,
# stopping at the first failure: the check that no test waits on time instead of a condition.
LOAD_RUNS ?= 1
.PHONY: test-under-load
test-under-load: $(STAMP)
	$(PY) tests/under_load.py --runs $(LOAD_RUNS) -- $(MAKE) --no-print-directory test

bench: $(STAMP)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/summary.py

clean:
	rm -rf .venv .venv-3.* build site *.egg-info
