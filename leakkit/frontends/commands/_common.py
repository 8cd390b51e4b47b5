"""What every front end (CLI, magics, pytest plugin) shares: naming things by text, and one repeat loop.

Front ends hold no measuring logic: :func:`check` is the loop a user would write around
:func:`leakkit.trace` (or a call of :func:`leakkit.bisect` when targets are given), and
:func:`resolve` turns the text people type (``pkg.mod``, ``pkg.mod:Class.method``) into objects.
"""
from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from ..._errors import InvalidArgumentError, describe, expected

DEFAULT_CALLS = 50  # trace-based checks (magic, marker, fixture); bisect has its own default
DEFAULT_WARMUP = 2


def resolve(spec: str, namespace: dict[str, Any] | None = None) -> Any:
    """The object ``spec`` names: ``pkg.mod``, ``pkg.mod.func``, ``pkg.mod:Class.method``, or a name in ``namespace``.

    Raises InvalidArgumentError when nothing by that name can be imported or looked up.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise expected("a name such as 'pkg.module', 'pkg.module:function' or 'module.Class'", "name", spec)
    spec = spec.strip()
    if ":" in spec:
        module_name, _, attribute = spec.partition(":")
        return _attributes(_import(module_name, spec), attribute, spec)
    head, _, rest = spec.partition(".")
    if namespace is not None and head in namespace:
        return _attributes(namespace[head], rest, spec)
    parts = spec.split(".")
    for cut in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
        module_name = ".".join(parts[:cut])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and not (module_name == error.name or module_name.startswith(error.name + ".")):
                raise _import_failed(spec, error) from None  # the module exists, one of its imports does not
            continue
        except ImportError as error:
            raise _import_failed(spec, error) from None
        except Exception as error:  # the user's module raised while importing: their error, not ours
            raise _import_failed(spec, error) from None
        return _attributes(module, ".".join(parts[cut:]), spec)
    raise InvalidArgumentError(f"expected an importable module or a name defined here, received {spec!r} "
                               f"(nothing by that name; is its directory on sys.path?)")


def resolve_all(specs: Any, namespace: dict[str, Any] | None = None) -> list[Any]:
    """Targets from text or objects: strings may list several names separated by commas."""
    items = specs if isinstance(specs, (list, tuple)) else [specs]
    found: list[Any] = []
    for item in items:
        if isinstance(item, str):
            found.extend(resolve(name, namespace) for name in item.split(",") if name.strip())
        else:
            found.append(item)
    if not found:
        raise expected("at least one module, class or function to search", "targets", specs)
    return found


def _import(module_name: str, spec: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except Exception as error:  # ImportError, or whatever the module raised while importing
        raise _import_failed(spec, error) from None


def _import_failed(spec: str, error: Exception) -> InvalidArgumentError:
    cause = "" if isinstance(error, ImportError) else "importing it raised "
    return InvalidArgumentError(f"expected an importable name, received {spec!r}: {cause}{type(error).__name__}: {error}")


def _attributes(obj: Any, path: str, spec: str) -> Any:
    for name in filter(None, path.split(".")):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise InvalidArgumentError(f"expected {spec!r} to name an object, received no attribute {name!r} "
                                       f"on {getattr(obj, '__name__', type(obj).__name__)}") from None
        except Exception as error:  # a module __getattr__ or a property that raised
            raise InvalidArgumentError(f"expected {spec!r} to name an object, received {type(error).__name__} "
                                       f"looking up {name!r}: {error}") from None
    return obj


def check(workload: Callable[[], Any], *, calls: int | None = None, warmup: int | None = None,
          targets: Any = None, progress: bool | None = None, name: str | None = None) -> Any:
    """Run ``workload`` repeatedly and judge what it keeps: bisect with ``targets``, else trace.

    Args:
        workload: a zero-argument callable (one request, one test body, one cell).
        calls: measured calls (default :data:`DEFAULT_CALLS` for a trace, bisect's own default
            with targets); at least ``leakkit.engine.run.MIN_CALLS``.
        warmup: calls run first and not measured (default 2).
        targets: modules, classes or functions: bisect to find the culprit and what keeps it.
        progress: a tqdm bar; None shows it only on a terminal.
        name: what the report calls the workload (trace only).

    Returns the TraceReport or BisectReport.
    """
    from ... import bisect, trace
    from ...engine.run import MIN_CALLS

    check_workload(workload)
    warmup = DEFAULT_WARMUP if warmup is None else warmup
    if targets is not None:
        if isinstance(targets, (list, tuple, set, frozenset)) and not targets:
            raise expected("at least one module, class or function to search (or no targets: a trace)",
                           "targets", targets)
        options = {} if calls is None else {"calls": calls}
        return bisect(workload, targets=targets, warmup=warmup, progress=progress, **options)
    calls = DEFAULT_CALLS if calls is None else calls
    if isinstance(calls, bool) or not isinstance(calls, int) or calls < MIN_CALLS:
        raise expected(f"an int >= {MIN_CALLS} (the fewest calls that give a verdict)", "calls", calls)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise expected("an int >= 0", "warmup", warmup)
    bar = _progress_bar(progress, warmup + calls, "leakkit check")
    traced = trace(workload, **({"name": name} if name else {}))
    try:
        for _ in range(warmup):
            workload()
            if bar is not None:
                bar.update()
        for _ in range(calls):
            traced()
            if bar is not None:
                bar.update()
        # judged before the bar closes: closing frees what its display allocated, which would read as shrinkage
        return traced.report()
    finally:
        if bar is not None:
            bar.close()
        traced.stop()


def check_workload(workload: Any) -> None:
    """Raise WorkloadError unless ``workload`` can be called with no arguments (checked before any run)."""
    import inspect

    from ..._errors import WorkloadError

    if not callable(workload):
        raise WorkloadError(f"workload: expected a zero-argument function, received {describe(workload)}")
    try:
        signature = inspect.signature(workload)
    except (TypeError, ValueError):  # builtins without a signature: the call itself will tell
        return
    try:
        signature.bind()
    except TypeError as error:
        raise WorkloadError(f"workload: expected a function callable with no arguments (wrap it: "
                            f"lambda: func(request)), received {describe(workload)} ({error})") from None


def _progress_bar(progress: bool | None, total: int, desc: str) -> Any:
    if progress is False or (progress is None and not sys.stderr.isatty()):
        return None
    from tqdm.auto import tqdm

    # shown at once (no delay): what its first display allocates is then part of the baseline
    return tqdm(total=total, desc=desc, unit="call", leave=False)


def leaks(report: Any) -> bool:
    """Whether a report found a leak: verdict ``leak``, or a forecast of steady or stepwise growth."""
    verdict = getattr(report, "verdict", None)
    if verdict is not None:
        return verdict == "leak"
    return getattr(report, "shape", None) in ("linear", "step")


def check_plot_path(path: str, name: str = "plot") -> str:
    """Refuse a plot path matplotlib cannot write, before any slow work: returns its format."""
    from matplotlib.figure import Figure

    from ...recording.files import check_writable_target

    supported = sorted(Figure().canvas.get_supported_filetypes())
    fmt = os.path.splitext(path)[1][1:].lower()
    if os.path.isdir(path):
        raise InvalidArgumentError(f"{name}: expected an image file name (.png, .svg, .pdf, ...), received "
                                   f"{path!r}, a directory")
    if fmt not in supported:
        raise InvalidArgumentError(f"{name}: expected an image file name ending in one of "
                                   f"{', '.join('.' + f for f in supported)}, received {path!r}")
    check_writable_target(path, name)
    return fmt


def save_plot(report: Any, path: str, *, picked: bool = False) -> str:
    """Draw ``report.plot(ax=...)`` into an image file (format from its extension), without pyplot.

    ``picked``: leakkit chose the name (next to a recording), so a symlink or hard link planted
    there is refused rather than followed.
    """
    from matplotlib.figure import Figure

    from ...recording.files import open_replace

    fmt = check_plot_path(path)
    figure = Figure(figsize=(8, 4), layout="tight")
    report.plot(ax=figure.subplots())
    try:
        if picked:
            handle = os.fdopen(open_replace(path, "plot"), "wb")
        else:
            handle = open(path, "wb")  # noqa: SIM115 - the user named it: follow it as they meant
        with handle:
            figure.savefig(handle, format=fmt, dpi=100)
    except OSError as error:
        raise InvalidArgumentError(f"plot: expected a writable path, received {path!r}: {error}") from None
    return path


def note(message: str) -> None:
    """A line for the person at the terminal (stderr), apart from the report on stdout."""
    print(message, file=sys.stderr)
