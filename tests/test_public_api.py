"""The public API the layout must not change: every name in ``leakkit.__all__``, the IPython
extension, the command line, and the pytest plugin found by its entry point at ~zero cost unused.

The names and signatures are written out here, copied from the layout before the move into
packages: a rename, a dropped argument or a changed default fails, wherever the code now lives.
"""
from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

import leakkit

# name in leakkit.__all__ -> (the object's __name__, its signature with annotations and private
# parameters left out; for an exception or warning, its base classes)
PUBLIC = {
    "AttachReport": ("AttachReport", "(result, way_in, target=<factory>, path=None)"),
    "attach": ("attach", "(pid, *, duration=30.0, out=None, inject=True, top=15, frames=10, "
                         "max_trace_memory='16MiB', progress=None, finish=None)"),
    "load_attach": ("load_attach", "(path)"),
    "BisectReport": ("BisectReport", "(verdict, culprit, retention, suspects, growing_types, paths, "
                                     "series, tasks, function_series, total, native, native_leak, "
                                     "reason, calls, warmup, errors, error_types, calls_to_decide, "
                                     "seconds, retention_details=<factory>, notes=<factory>)"),
    "Forecast": ("Forecast", "(shape, column, rate_bytes_per_s, rate_interval, eta_s, eta_interval, "
                             "limit_bytes, current_bytes, samples, duration_s, confidence=0.95)"),
    "Growth": ("Growth", "(verdict, rate, rate_low, rate_high, total, growth_times, intervals, laplace, "
                         "noise, calls_to_decide=None, reason='', extra=<factory>)"),
    "GrowthSites": ("GrowthSites", "(frame, series, loops, calls_per_loop, nframes)"),
    "HeapNativeReport": ("HeapNativeReport", "(verdict, calls, heap_bytes, process_bytes, trimmed_bytes, "
                                             "tolerance_bytes, readings, malloc_live_bytes=None)"),
    "InvalidArgumentError": ("InvalidArgumentError", ("LeakkitError", "ValueError")),
    "LeakkitError": ("LeakkitError", ("Exception",)),
    "MixedProcessesError": ("MixedProcessesError", ("InvalidArgumentError",)),
    # as recorded before issue 19; since then every option got a default (an old call passes them all) and
    # options with defaults were added (sustain, trace_window, role, service, version, limit_bytes, fork)
    "Monitor": ("Monitor", "(path, *, interval, window, min_growth, auto_snapshot, signal, baseline, top)"),
    "NotARecordingError": ("NotARecordingError", ("LeakkitError", "ValueError")),
    "ProbeUnavailableWarning": ("ProbeUnavailableWarning", ("UserWarning",)),
    "ProcessAccessError": ("ProcessAccessError", ("LeakkitError",)),
    "Recording": ("Recording", "(calls, checkpoints, summaries)"),
    "RecordingStoppedWarning": ("RecordingStoppedWarning", ("UserWarning",)),
    "SaveError": ("SaveError", ("LeakkitError", "OSError")),
    "Trace": ("Trace", "(func, *, checkpoint_every='auto', summaries=True, tracemalloc=False, fds=False, "
                       "stream=None, overhead_budget=0.05, name=None)"),
    "TraceReport": ("TraceReport", "(function, verdict, calls, errors, blocks, bytes_per_call, "
                                   "bytes_per_call_low, bytes_per_call_high, bytes_source, native, "
                                   "growing_types, reason, recording, bytes=None, native_column='uss')"),
    "UnknownOptionError": ("UnknownOptionError", ("LeakkitError", "TypeError")),
    "WorkerForecasts": ("WorkerForecasts", "(table, forecasts, limit_bytes, limit_source, together=<factory>, "
                                           "total_pss=None, duration_s=0.0)"),
    "WorkloadError": ("WorkloadError", ("LeakkitError",)),
    "bisect": ("bisect", "(workload, *, targets, calls=60, warmup=2, checkpoints=20, nframe=64, "
                         "progress=None, freeze=True, time_budget=15.0, max_calls=None, **unknown)"),
    "classify_readings": ("classify_readings", "(frame, *, heap_column='traced_bytes', "
                                               "process_column=None, trimmed_bytes=None, "
                                               "tolerance='1MiB')"),
    "forecast": ("forecast", "(frame, limit=None, *, column=None, tolerance='1MiB', confidence=0.95)"),
    "forecast_workers": ("forecast_workers", "(frame, limit=None, *, column=None, tolerance='1MiB', "
                                             "confidence=0.95)"),
    "growth_sites": ("growth_sites", "(workload, *, loops=10, calls_per_loop=1, nframes=25, top=10, "
                                     "threads=False, progress=None, **unknown)"),
    "heap_summary": ("heap_summary", "(objects=None, *, collect=True)"),
    "heap_vs_native": ("heap_vs_native", "(workload, *, calls=20, warmup=1, trim=True, tolerance='1MiB')"),
    "humanize": ("humanize", "(frame)"),
    "load": ("load", "(path)"),
    "load_watch": ("load", "(path)"),
    "malloc_trim": ("malloc_trim", "()"),
    # as recorded before issue 19, but for three defaults it changed on purpose: min_growth 16MiB -> 1MiB (a
    # 1 MiB/min leak never rose 16 MiB in a window, so its snapshot never came), baseline True -> False (a
    # heap walk at start unshares a forked worker's pages: megabytes in every worker, for a comparison the
    # snapshot's own two summaries make), window 60 -> None (unset, the window is sustain=300 s, the new
    # option; window=N still means N samples: sustain = N * interval). Added since, with defaults:
    # sustain, trace_window, role, service, version, limit, fork, export (issue 23: exporters fed each
    # status and closed with the monitor).
    "monitor": ("monitor", "(path, *, interval=1.0, window=None, min_growth='1MiB', auto_snapshot=True, "
                           "signal=False, baseline=False, top=15, **unknown)"),
    "read_mprofile": ("read_mprofile", "(path)"),
    "summary_diff": ("summary_diff", "(before, after)"),
    "trace": ("trace", "(func=None, *, checkpoint_every='auto', summaries=True, tracemalloc=False, "
                       "fds=False, stream=None, overhead_budget=0.05, name=None)"),
    "verdict": ("verdict", "(series, calls=None, *, floor=0.0)"),
    # children: True since issue 19 (was False): a watch of a server's master follows its workers,
    # each on rows of its own; children=True no longer sums them (no limit counts that sum). Added since,
    # with defaults: live (issue 19), fleet (issue 23: every process's row as fleet Parquet).
    "watch": ("watch", "(pid_or_command, *, interval=1.0, duration=None, out=None, limit=None, "
                       "children=True, progress=None)"),
    "write_mprofile": ("write_mprofile", "(frame, path, *, column='rss', cmdline=None)"),
    "FleetReport": ("FleetReport", "(tables, top=10)"),
    "FleetWriter": ("FleetWriter", "(root, *, host=None, service=None, every=10.0, slice_s=3600.0, flush_s=60.0, "
                                   "source='monitor', compression='gzip')"),  # version=None added (issue 23)
    "OpenTelemetryExporter": ("OpenTelemetryExporter", "(*, meter_provider=None, service=None, version=None, "
                                                       "role=None)"),
    "PrometheusExporter": ("PrometheusExporter", "(*, port=None, addr='127.0.0.1', multiprocess=None, service=None, "
                                                 "version=None, role=None, stale_after=None)"),
    "fleet": ("fleet", "(path, *, column='rss', since=None, stale='5min', top=10)"),
}
HEAVY = ("pandas", "numpy", "matplotlib", "IPython", "tqdm", "leakkit.frontends.leakcheck_all",
         "leakkit.engine.run")  # what loading the plugin, or ``import leakkit``, must not import


class _Shown:
    """A default shown as text only (a dataclass field's ``<factory>``)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _recorded(text: str) -> inspect.Signature:
    function = eval(f"lambda {text[1:-1].replace('<factory>', 'FACTORY')}: None", {"FACTORY": _Shown("<factory>")})
    return inspect.signature(function)


def _public_parameters(obj: object) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(obj).parameters.values() if not p.name.startswith("_")]


def _incompatible(obj: object, text: str) -> list[str]:
    """What an old call would no longer find: each recorded parameter with its kind, position and
    default; a parameter added since must have a default, so old calls still work."""
    live = {p.name: p for p in _public_parameters(obj)}
    old = list(_recorded(text).parameters.values())
    problems = []
    for p in old:
        now = live.get(p.name)
        if now is None:
            problems.append(f"{p.name} is gone")
        elif now.kind != p.kind:
            problems.append(f"{p.name} is {now.kind.description}, was {p.kind.description}")
        elif p.default is not p.empty and (now.default is now.empty or repr(now.default) != repr(p.default)):
            problems.append(f"{p.name} defaults to {now.default!r}, was {p.default!r}")  # a required one may get one
    positional = [p.name for p in old if p.kind is p.POSITIONAL_OR_KEYWORD]
    live_positional = [n for n, p in live.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    if live_positional[:len(positional)] != positional:
        problems.append(f"positional order is {live_positional}, was {positional}")
    known = {p.name for p in old}
    problems += [f"new {n} has no default" for n, p in live.items() if n not in known and p.default is p.empty
                 and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return problems


def test_all_lists_exactly_the_public_names():
    assert sorted(leakkit.__all__) == sorted(PUBLIC)
    assert set(PUBLIC) <= set(dir(leakkit))


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_each_public_name_imports_as_the_object_it_was(name):
    namespace: dict[str, object] = {}
    exec(f"from leakkit import {name}", namespace)
    obj = namespace[name]
    assert obj is getattr(leakkit, name)
    real_name, shape = PUBLIC[name]
    assert obj.__name__ == real_name
    assert obj.__module__.startswith("leakkit.")
    if isinstance(shape, tuple):  # an exception or a warning: caught by the same classes as before
        assert [base.__name__ for base in obj.__bases__] == list(shape)
    else:
        assert callable(obj)
        assert not _incompatible(obj, shape), f"leakkit.{name}{inspect.signature(obj)}"


def test_the_signature_check_fails_on_a_changed_signature():
    def renamed(frame, *, tolerance="1MiB"):
        pass

    def moved_default(frame, limit=None, *, column=None, tolerance="2MiB", confidence=0.95):
        pass

    def grown(frame, limit=None, extra=0, *, column=None, tolerance="1MiB", confidence=0.95, must=1):
        pass

    old = PUBLIC["forecast"][1]
    assert _incompatible(renamed, old) == ["limit is gone", "column is gone", "confidence is gone",
                                           "positional order is ['frame'], was ['frame', 'limit']"]
    assert _incompatible(moved_default, old) == ["tolerance defaults to '2MiB', was '1MiB'"]
    assert _incompatible(grown, old) == []  # added with defaults: every old call still works

    def loosened(path, *, interval=1.0, window=None):  # required options given defaults: old calls pass them all
        pass

    def tightened(path, *, interval, window):
        pass

    assert _incompatible(loosened, "(path, *, interval, window)") == []
    assert _incompatible(tightened, "(path, *, interval=1.0, window=None)") == [
        "interval defaults to <class 'inspect._empty'>, was 1.0", "window defaults to <class 'inspect._empty'>, was None"]
    assert _incompatible(renamed, "(frame, *, window=None)") == ["window is gone"]


def test_star_import_gives_every_public_name():
    namespace: dict[str, object] = {}
    exec("from leakkit import *", namespace)
    assert set(PUBLIC) <= set(namespace)


def test_the_ipython_extension_is_loadable_from_the_package():
    assert list(inspect.signature(leakkit.load_ipython_extension).parameters) == ["ipython"]
    from leakkit.frontends import magics

    assert callable(magics.load_ipython_extension)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
    return {**env, "PYTHONDONTWRITEBYTECODE": "1"}


def test_python_m_leakkit_and_the_console_script_show_the_same_help():
    commands = ("watch", "run", "report", "bisect", "fleet")
    done = subprocess.run([sys.executable, "-m", "leakkit", "--help"], capture_output=True, text=True,
                          env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m leakkit")
    assert all(command in done.stdout for command in commands)
    script = shutil.which("leakkit", path=os.path.dirname(sys.executable)) or shutil.which("leakkit")
    assert script is not None, "the leakkit console script is not installed"
    by_script = subprocess.run([script, "--help"], capture_output=True, text=True, env=_env(), timeout=120)
    assert by_script.returncode == 0, by_script.stderr
    assert by_script.stdout == done.stdout.replace("python -m leakkit", "leakkit")
    (entry,) = [e for e in metadata.entry_points(group="console_scripts") if e.name == "leakkit"]
    from leakkit.frontends.cli import main

    assert entry.load() is main


def test_the_pytest_plugin_is_found_through_its_entry_point(request):
    (entry,) = [e for e in metadata.entry_points(group="pytest11") if e.name == "leakkit"]
    plugin = entry.load()
    assert callable(plugin.pytest_addoption) and callable(plugin.pytest_configure)
    assert request.config.pluginmanager.get_plugin("leakkit") is plugin  # this very session loaded it


def test_the_plugin_imports_nothing_heavy_until_asked():
    """``import leakkit`` and loading the plugin through its entry point import none of pandas,
    numpy, matplotlib (nor bisect's engine or --leakcheck-all), and leave tracemalloc off."""
    code = textwrap.dedent(f"""
        import json, sys, tracemalloc
        from importlib import metadata
        import leakkit
        (entry,) = [e for e in metadata.entry_points(group="pytest11") if e.name == "leakkit"]
        entry.load()
        print(json.dumps({{"loaded": sorted(m for m in {HEAVY!r} if m in sys.modules),
                          "plugin": "leakkit.frontends.pytest_plugin" in sys.modules,
                          "tracing": tracemalloc.is_tracing()}}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"loaded": [], "plugin": True, "tracing": False}


def test_a_lazy_name_is_not_imported_while_datetime_is_patched():
    """freezegun's ``freeze_time`` reads every attribute of every loaded module (``dir`` then
    ``getattr``) with ``datetime.datetime`` replaced; leakkit's lazy names would import pandas
    then, whose Cython datetime code crashes the interpreter (python-dateutil's suite, issue 21):
    the lazy ``__getattr__`` raises ImportError instead (what such scans skip), and resolves the
    name as usual once datetime is restored."""
    code = textwrap.dedent(f"""
        import datetime, json, sys
        import leakkit
        real = datetime.datetime
        class Fake(real):
            pass
        datetime.datetime = Fake
        try:
            leakkit.load_attach
        except ImportError as e:
            refused = str(e)
        else:
            refused = None
        loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)
        datetime.datetime = real
        print(json.dumps({{"refused": refused, "loaded": loaded, "after": leakkit.humanize.__name__}}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["refused"] and "datetime.datetime is patched" in found["refused"]
    assert found["loaded"] == [] and found["after"] == "humanize"


def test_freezegun_freezing_time_with_leakkit_loaded_imports_nothing_heavy():
    pytest.importorskip("freezegun")
    code = textwrap.dedent(f"""
        import json, sys
        import leakkit, freezegun
        with freezegun.freeze_time("2020-01-01"):
            pass
        print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == []


def _tiny_session(directory, *options: str) -> dict[str, object]:
    """A one-test pytest session in a fresh interpreter: what it imported, and its import time
    (``-X importtime``: the sum of every module's own time, in microseconds)."""
    code = textwrap.dedent(f"""
        import json, sys, tracemalloc
        import pytest
        code = pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:randomly", *{list(options)!r}])
        print(json.dumps({{"code": int(code), "loaded": sorted(m for m in {HEAVY!r} if m in sys.modules),
                          "plugin": "leakkit.frontends.pytest_plugin" in sys.modules,
                          "tracing": tracemalloc.is_tracing()}}))
    """)
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          cwd=directory, env=_env(), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    found["import_us"] = sum(int(line.split("|")[0].split(":")[1]) for line in done.stderr.splitlines()
                             if line.startswith("import time:") and "self [us]" not in line)
    return found


def test_an_unused_plugin_costs_a_pytest_session_next_to_nothing(tmp_path):
    """The same session with the plugin installed and unused, and with ``-p no:leakkit``: the
    plugin adds no heavy import, leaves tracemalloc off, and next to no import time."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_tiny.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    with_plugin, without = [], []
    for _ in range(5):  # interleaved, the fastest of each: a busy machine slows both alike
        with_plugin.append(_tiny_session(tmp_path))
        without.append(_tiny_session(tmp_path, "-p", "no:leakkit"))
    for run in with_plugin + without:
        assert run["code"] == 0 and run["loaded"] == [] and run["tracing"] is False
    assert all(run["plugin"] for run in with_plugin) and not any(run["plugin"] for run in without)
    ratio = min(r["import_us"] for r in with_plugin) / min(r["import_us"] for r in without)
    # measured 1.00 +- 0.07 (import time inside leakkit: 3 ms of ~3 s); 1.3-1.5 when it imported numpy
    assert ratio < 1.25, f"an unused leakkit plugin makes a pytest session's imports {ratio:.2f}x slower"
