"""bisect finds the functions that objects hold: a module name rebound to a ``functools.partial``,
a decorator class, a callable instance keeping the function in a slot, a ``singledispatch``
implementation whose name was reused, a ``cached_property``, a Celery-style task object (and a
real Celery task), and a function only a library's registry keeps.

In each case the function that keeps memory is not bound to a module or class attribute, so
bisect used to charge its allocations to the nearest target frame (the caller). Each case is a
real module file (its code read from its source, as for any installed module) beside a small
"library" module that is not a target, with its ground truth checked without leakkit first: the
root grows by one entry per call, the entry was allocated on the line marked ``# the leak``,
inside the expected function (read from the source with :mod:`ast`), and the fixed module (the
same file with ``FIXED = True``) stays flat.
"""
from __future__ import annotations

import ast
import functools
import gc
import importlib
import itertools
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
import types
from concurrent.futures import ThreadPoolExecutor

import pytest

import leakkit
from leakkit.engine.targets import collect

LIB = textwrap.dedent('''\
    """Stand-ins for what frameworks do with a decorated function (not a bisect target)."""
    import functools


    class timed:
        """A decorator class: the instance stands for the function (functools.update_wrapper)."""

        def __init__(self, func):
            functools.update_wrapper(self, func)
            self.calls = 0

        def __call__(self, *args, **kwargs):
            self.calls += 1
            return self.__wrapped__(*args, **kwargs)


    class Limited:
        """A rate limiter's decorator result: a callable object with the function in a slot."""

        __slots__ = ("_fn", "_per_second")

        def __init__(self, fn, per_second):
            self._fn = fn
            self._per_second = per_second

        def __call__(self, *args, **kwargs):
            return self._fn(*args, **kwargs)

        def __getattr__(self, name):
            raise AssertionError(f"leakkit read {name!r} through __getattr__")


    def limit(per_second):
        return lambda fn: Limited(fn, per_second)


    class Task:
        """Celery-style: each task is the only instance of a class made for it, ``run`` the function."""

        def __call__(self, *args, **kwargs):
            return self.run(*args, **kwargs)

        def delay(self, *args, **kwargs):
            return self(*args, **kwargs)


    class TaskApp:
        def __init__(self):
            self.tasks = {}

        def task(self, fun):
            cls = type(fun.__name__, (Task,), {"run": staticmethod(fun), "name": fun.__qualname__,
                                               "__module__": fun.__module__, "__doc__": fun.__doc__})
            self.tasks[cls.name] = task = cls()
            return task


    HANDLERS = {}


    def subscribe(topic):
        """Registers the function and returns None: only HANDLERS keeps it."""
        def register(fn):
            HANDLERS.setdefault(topic, []).append(fn)
        return register


    def publish(topic, *args):
        for fn in HANDLERS.get(topic, ()):
            fn(*args)
''')

# name -> (source, the function expected as the culprit, its name in the report)
CASES = {
    "partial": ('''\
        import functools, itertools
        FIXED = False
        ROOT = []
        _seq = itertools.count()

        def send(channel, to, body):
            ROOT.append({"channel": channel, "to": to, "body": body * 20})  # the leak
            if FIXED:
                del ROOT[:-8]

        send = functools.partial(send, "email")

        def notify(n):
            send(f"user{n}", f"order {n} shipped")

        def workload():
            notify(next(_seq))
        ''', "send", "send"),
    "decorator_class": ('''\
        import itertools, heldlib
        FIXED = False
        ROOT = []
        _seq = itertools.count()

        @heldlib.timed
        def render_invoice(n):
            ROOT.append(f"<tr><td>{n}</td><td>paid</td></tr>" * 8)  # the leak
            if FIXED:
                del ROOT[:-8]

        def workload():
            render_invoice(next(_seq))
        ''', "render_invoice", "render_invoice"),
    "callable_instance": ('''\
        import itertools, heldlib
        FIXED = False
        ROOT = {}
        _seq = itertools.count()

        @heldlib.limit(per_second=50)
        def open_session(user):
            ROOT[f"s-{user}"] = {"user": user, "scopes": ["read", "write"] * 20}  # the leak
            if FIXED:
                ROOT.pop(f"s-{user}")

        def login(n):
            open_session(f"user{n}")

        def workload():
            login(next(_seq))
        ''', "open_session", "open_session"),
    "singledispatch": ('''\
        import functools, itertools
        FIXED = False
        ROOT = []
        _seq = itertools.count()

        class Order:
            def __init__(self, n):
                self.n = n

        class Refund(Order):
            pass

        @functools.singledispatch
        def export(record):
            raise TypeError(record)

        @export.register
        def _(record: Order):
            ROOT.append({"order": record.n, "lines": [record.n] * 30})  # the leak
            if FIXED:
                del ROOT[:-8]

        @export.register
        def _(record: Refund):
            return {"refund": record.n}

        def close(n):
            export(Order(n))
            export(Refund(n))

        def workload():
            close(next(_seq))
        ''', "_", "_ (line {line})"),
    "cached_property": ('''\
        import functools, itertools
        FIXED = False
        ROOT = []
        _seq = itertools.count()

        class Quote:
            def __init__(self, n):
                self.n = n

            @functools.cached_property
            def breakdown(self):
                parts = [self.n * 0.5] * 40  # the leak
                ROOT.append(parts)
                if FIXED:
                    del ROOT[:-8]
                return sum(parts)

        def price(n):
            return Quote(n).breakdown

        def workload():
            price(next(_seq))
        ''', "breakdown", "Quote.breakdown"),
    "task_object": ('''\
        import itertools, heldlib
        FIXED = False
        ROOT = []
        _seq = itertools.count()
        APP = heldlib.TaskApp()

        @APP.task
        def ingest(n):
            ROOT.append({"batch": n, "rows": [f"row-{n}-{i}" for i in range(12)]})  # the leak
            if FIXED:
                del ROOT[:-8]

        def workload():
            ingest.delay(next(_seq))
        ''', "ingest", "ingest"),
    "registry_only": ('''\
        import itertools, heldlib
        FIXED = False
        ROOT = []
        _seq = itertools.count()

        @heldlib.subscribe(__name__)
        def on_paid(n):
            ROOT.append({"paid": n, "ledger": [n] * 30})  # the leak
            if FIXED:
                del ROOT[:-8]

        def workload():
            heldlib.publish(__name__, next(_seq))
        ''', "on_paid", "on_paid"),
}
_names = itertools.count()


@pytest.fixture
def load(tmp_path, monkeypatch):
    """Import a case's source as a real module file, beside the library module."""
    (tmp_path / "heldlib.py").write_text(LIB)
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded: list[str] = []

    def _load(case: str, fixed: bool = False):
        name = f"held_{case}_{next(_names)}"
        source = textwrap.dedent(CASES[case][0]).replace("FIXED = False", f"FIXED = {fixed}")
        (tmp_path / f"{name}.py").write_text(source)
        importlib.invalidate_caches()
        loaded.append(name)
        return importlib.import_module(name), source

    yield _load
    for name in loaded + ["heldlib"]:
        sys.modules.pop(name, None)


def _growth(module, calls: int) -> tuple[int, int, object]:
    """(entries the root gained, Python bytes kept, the newest entry) over ``calls`` calls after
    ten of warm-up (a fixed module's ring of 8 is full by then), without leakkit."""
    for _ in range(10):
        module.workload()
    gc.collect()
    tracemalloc.start(1)
    try:
        before, bytes_before = len(module.ROOT), tracemalloc.get_traced_memory()[0]
        for _ in range(calls):
            module.workload()
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - bytes_before
        entries = list(module.ROOT.values()) if isinstance(module.ROOT, dict) else list(module.ROOT)
        return len(module.ROOT) - before, kept, tracemalloc.get_object_traceback(entries[-1]) if entries else None
    finally:
        tracemalloc.stop()


def _function_at(source: str, line: int) -> str | None:
    """The innermost function of ``source`` whose body holds ``line`` (read with ast)."""
    best = None
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.lineno <= line <= node.end_lineno:
            if best is None or node.lineno > best.lineno:
                best = node
    return best.name if best is not None else None


def _first_line(source: str, function: str, *, nth: int = 0) -> int:
    """The line a function's code starts at (its first decorator's), the ``nth`` of that name."""
    defs = sorted((n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == function),
                  key=lambda n: n.lineno)
    node = defs[nth]
    return min([node.lineno] + [d.lineno for d in node.decorator_list])


@pytest.mark.parametrize("case", sorted(CASES))
def test_ground_truth_the_held_function_keeps_what_the_root_grows_by(case, load) -> None:
    module, source = load(case)
    added, leaked, where = _growth(module, 100)
    assert added == 100 and leaked > 100 * 200, (added, leaked)
    leak_line = next(i for i, text in enumerate(source.splitlines(), 1) if "# the leak" in text)
    assert where is not None and where[0].lineno == leak_line, where
    assert _function_at(source, leak_line) == CASES[case][1]
    fixed, _ = load(case, fixed=True)
    added, kept, _ = _growth(fixed, 100)
    assert added <= 0 and kept < 0.1 * leaked, (added, kept, leaked)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_held_function_is_the_culprit_and_is_counted(case, load) -> None:
    module, source = load(case)
    report = leakkit.bisect(module.workload, targets=[module], calls=16, progress=False)
    line = _first_line(source, CASES[case][1])
    expected = f"{module.__name__}.{CASES[case][2].format(line=line)}"
    assert report.verdict == "leak", str(report)
    assert report.culprit == expected, str(report)
    assert any(path.startswith(f"{module.__name__}.ROOT") for path in map(str, report.retention[:3])), report.retention
    calls = dict(zip(report.suspects["function"], report.suspects["calls"], strict=True))
    if case != "registry_only":  # only the library keeps that one: its lines are mapped, its calls not counted
        assert calls[expected] == report.calls + 2, calls  # the measured calls and the warm-up


@pytest.mark.parametrize("case", ["singledispatch", "task_object"])
def test_the_fixed_module_is_not_called_a_leak(case, load) -> None:
    module, _ = load(case, fixed=True)
    report = leakkit.bisect(module.workload, targets=[module], calls=16, progress=False)
    assert report.verdict != "leak", str(report)


def test_a_real_celery_task_is_the_culprit(load, tmp_path) -> None:
    pytest.importorskip("celery")
    (tmp_path / "celery_tasks.py").write_text(textwrap.dedent('''\
        import itertools
        from celery import Celery

        app = Celery("celery_tasks", broker="memory://")
        app.conf.task_always_eager = True
        app.conf.task_store_eager_result = False
        ROOT = []
        _seq = itertools.count()

        @app.task
        def ingest(n):
            ROOT.append({"batch": n, "rows": [f"row-{n}-{i}" for i in range(12)]})  # the leak

        def workload():
            ingest.delay(next(_seq))
        '''))
    importlib.invalidate_caches()
    module = importlib.import_module("celery_tasks")
    try:
        added, kept, _ = _growth(module, 60)
        assert added == 60 and kept > 60 * 200, (added, kept)
        report = leakkit.bisect(module.workload, targets=[module], calls=16, progress=False)
        assert report.verdict == "leak" and report.culprit == "celery_tasks.ingest", str(report)
    finally:
        sys.modules.pop("celery_tasks", None)


def test_callable_objects_given_as_targets_stand_for_the_functions_they_hold(load) -> None:
    module, _ = load("callable_instance")
    report = leakkit.bisect(module.workload, targets=[module.open_session], calls=16, progress=False)
    assert report.culprit == f"{module.__name__}.open_session", str(report)


# -- collecting: bounded, no user code run, the file's own code only when it is the live one ----
def test_the_walk_costs_the_same_whatever_the_namespace_holds() -> None:
    """The functions behind a big registry are found by looking at the same number of objects
    whether the containers beside them hold ten thousand entries or thirty times as many."""
    from leakkit.engine import held

    def handler() -> None:
        pass

    looked = []
    for size in (3_000, 90_000):
        space = {"ROWS": [{"n": i} for i in range(size)], "INDEX": {i: [i] for i in range(size)},
                 "APP": types.SimpleNamespace(routes={"/": functools.partial(handler)})}
        found = held.held_functions(list(space.values()), lambda f: f is handler, own_types=lambda cls: False)
        assert found.functions == [handler] and not found.cut
        looked.append(found.looked_at)
        del space
    assert looked[0] == looked[1] <= held.LIMIT, looked


def test_collecting_runs_no_code_of_the_objects_it_looks_at(load) -> None:
    module, _ = load("callable_instance")  # Limited.__getattr__ raises if anything reads through it
    touched: list[str] = []

    class Lazy:
        def __getattr__(self, name):
            touched.append(name)
            raise AttributeError(name)

        @property
        def __class__(self):
            touched.append("__class__")
            return dict

        @property
        def __dict__(self):
            touched.append("__dict__")
            return {}

    module.LAZY = Lazy()
    module.LAZY_IN_LIST = [Lazy(), functools.partial(module.workload)]
    found = collect([module])
    try:
        assert f"{module.__name__}.open_session" in found.functions
    finally:
        found.restore()
    assert touched == []


def test_a_file_edited_since_its_import_is_not_used_for_lines(load, tmp_path) -> None:
    module, source = load("registry_only")
    name = module.__name__
    found = collect([module])
    found.restore()
    on_paid = [key for key, value in found.lines.items() if value == f"{name}.on_paid"]
    assert on_paid, "the registry-only function's lines come from the file's own code"
    (tmp_path / f"{name}.py").write_text("# two lines\n# added above\n" + source)
    found = collect([module])
    found.restore()
    assert not any(value == f"{name}.on_paid" for value in found.lines.values())


def test_nested_code_is_named_under_its_method() -> None:
    found = collect([_Service])
    found.restore()
    names = set(found.lines.values())
    assert f"{__name__}._Service.handle.<locals>.inner" in names, names
    assert not any("._Service._Service." in n for n in names), names


class _Service:
    def handle(self) -> list:
        def inner() -> list:
            return [1]
        return inner()


SCRIPT = textwrap.dedent('''\
    import functools, itertools, json, sys
    import leakkit

    OUTBOX = []
    _seq = itertools.count()

    def send(channel, to, body):
        OUTBOX.append({"channel": channel, "to": to, "body": body * 20})

    send = functools.partial(send, "email")

    @functools.singledispatch
    def export(record):
        return None

    @export.register
    def _(record: int):
        send(f"user{record}", "shipped")

    def workload():
        export(next(_seq))

    report = leakkit.bisect(workload, targets=[sys.modules[__name__]], calls=16, progress=False)
    print("RESULT " + json.dumps({"culprit": report.culprit, "root": str(report.retention[0]) if report.retention else None}))
''')


def test_held_functions_typed_at_the_top_level_are_found_from_a_file_and_from_a_pipe(tmp_path) -> None:
    """``__main__`` run from a file (its code compiled from the source) and piped to ``python -``
    (its file is ``<stdin>``): the same culprit and root."""
    (tmp_path / "service.py").write_text(SCRIPT)
    env = {**os.environ, "MPLBACKEND": "Agg"}

    def run(args: list[str], stdin: str | None) -> dict:
        proc = subprocess.run([sys.executable, *args], input=stdin, capture_output=True, text=True, cwd=tmp_path,
                              timeout=240, env=env)
        lines = [line[7:] for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        assert lines, proc.stdout[-2000:] + proc.stderr[-3000:]
        return json.loads(lines[-1])

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda a: run(*a), [(["service.py"], None), (["-"], SCRIPT)]))
    for got in results:
        assert got["culprit"] == "__main__.send" and got["root"].startswith("__main__.OUTBOX["), results
