"""From a bisect run's series and survivors to a verdict, a culprit and retention paths."""
from __future__ import annotations

import math
import re
import sys
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import retention
from .analysis import Growth, classify, theil_sen
from .attribution import OUTSIDE
from .bisect_report import BisectReport

if TYPE_CHECKING:  # pragma: no cover
    from .drilldown import _Run

BYTES_FLOOR = 1024
FUNC_FLOOR = 512
NATIVE_FLOOR = 768 << 10  # clean runs here move RSS-minus-traced by < 150 KiB (threads: ~470)


# In a notebook, __main__ also holds the shell's own history and objects: not roots of a leak.
_SHELL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})
_SHELL_HISTORY = re.compile(r"^_(?:_{0,2}|i{1,3}|ih|oh|dh|i?\d+)$")  # _, __, ___, _i, _ii, _ih, _oh, _dh, _i5, _5
_SHELL_MODULES = ("IPython", "ipykernel", "jupyter_client", "zmq", "traitlets", "tornado")


def _module_namespace(module: Any) -> list[tuple[str, Any]]:
    spaces = []
    main = module.__name__ == "__main__"
    for key, value in list(vars(module).items()):
        if (key.startswith("__") and key.endswith("__")) or isinstance(value, type(sys)):
            continue
        if main and (key in _SHELL_NAMES or _SHELL_HISTORY.match(key)
                     or type(value).__module__.startswith(_SHELL_MODULES)):
            continue
        spaces.append((f"{module.__name__}.{key}", value))
    return spaces


def _namespaces(run: _Run) -> list[tuple[str, Any]]:
    """Roots to walk forward from: the target modules' globals, the target classes, and the
    globals of the modules the target functions live in."""
    spaces: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for module in run.found.modules:
        if module.__name__ not in seen:
            seen.add(module.__name__)
            spaces.extend(_module_namespace(module))
    for cls in run.found.classes:
        spaces.append((f"{cls.__module__}.{cls.__qualname__}", cls))
    for func in run.found.functions.values():
        module = sys.modules.get(getattr(func, "__module__", "") or "")
        if module is not None and module.__name__ not in seen:
            seen.add(module.__name__)
            spaces.extend(_module_namespace(module))
    return spaces


def _own_modules(run: _Run) -> set[str]:
    return {m.__name__ for m in run.found.modules} | {c.__module__ for c in run.found.classes} | \
        {getattr(f, "__module__", "") for f in run.found.functions.values()}


def _forward_hits(run: _Run, deadline: float, found: list | None,
                  namespaces: list[tuple[str, Any]] | None = None, max_depth: int = 7) -> dict[str, list[list]]:
    """Objects under the given namespaces (the targets' by default) that target code created
    during the run, by function."""
    lines = run.found.lines

    def attribute(obj: Any) -> tuple[str, str] | None:
        tb = retention.object_traceback(obj)
        if tb is None:
            return None
        for frame in reversed(tb):
            name = lines.get((frame.filename, frame.lineno))
            if name is not None:
                return name, f"{frame.filename}:{frame.lineno}"
        return None

    spaces = _namespaces(run) if namespaces is None else namespaces
    hits = retention.forward(spaces, attribute, own_modules=_own_modules(run), deadline=deadline,
                             found=found, max_depth=max_depth)
    merged: dict[str, list[list]] = defaultdict(list)
    for (name, _site), holders in hits.items():
        merged[name].extend(holders)
    return {name: sorted(holders, key=lambda item: -item[2]) for name, holders in merged.items()}


def _other_namespaces(run: _Run) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """Globals of every other loaded module (not leakkit's): roots outside the targets."""
    own = _own_modules(run)
    prefixes = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})
    user, library = [], []
    for name, module in list(sys.modules.items()):
        if module is None or name in own or name.startswith(("leakkit", "_")) or not hasattr(module, "__dict__"):
            continue
        file = getattr(module, "__file__", None) or ""
        # the user's own modules first: the breadth-first walk has a node and time budget
        bucket = library if (file.startswith(prefixes) or name in sys.builtin_module_names) else user
        for key, value in list(vars(module).items()):
            if not (key.startswith("__") and key.endswith("__")) and not isinstance(value, type(sys)):
                bucket.append((f"{name}.{key}", value))
    return user, library


def _retention(run: _Run, name: str, forward_hits: dict[str, list[list]], samples: list[Any],
               deadline: float) -> list[retention.RetentionPath]:
    """Paths to what ``name`` made (empty if the search itself fails: the verdict stands)."""
    try:
        return _find_paths(run, name, forward_hits, samples, deadline)
    except Exception as error:  # pragma: no cover - user objects can misbehave in any way
        import warnings

        warnings.warn(f"leakkit: retention search for {name} failed ({type(error).__name__}: {error})",
                      RuntimeWarning, stacklevel=2)
        return []


def _find_paths(run: _Run, name: str, forward_hits: dict[str, list[list]], samples: list[Any],
                deadline: float) -> list[retention.RetentionPath]:
    """Paths to what ``name`` made: forward hits first, then backward from the objects."""
    paths: list[retention.RetentionPath] = []
    holders: set[str] = set()
    for path, chain, count in forward_hits.get(name, []):
        holder = path.rsplit("[", 1)[0]
        if holder in holders or len(paths) >= 5:
            continue
        holders.add(holder)
        root = path.split("[")[0].split(" ")[0]
        paths.append(retention.RetentionPath(path, root, count, retention.bounds_along(chain), "forward"))
    if not paths and samples and time.perf_counter() < deadline:
        spaces = _namespaces(run)
        extra = retention.untracked_holders(spaces)
        ignore = {id(samples), id(spaces), id(extra), id(paths)}
        roots = retention.module_dicts()
        chains = retention.backward(samples[:40], ignore, roots=roots, deadline=deadline, extra=extra)
        for chain in chains:
            text = retention.render(chain, roots)
            holder = text.rsplit("[", 1)[0]
            if holder not in holders:
                holders.add(holder)
                root = text.split("[")[0].split(" ")[0]
                paths.append(retention.RetentionPath(text, root, 1, retention.bounds_along(chain), "backward"))
        del chains, extra, spaces, roots
    if not paths and run.atexit_after - run.atexit_before >= max(3, run.calls // 2):
        # Held from the interpreter itself, where no reference search can look.
        grew = run.atexit_after - run.atexit_before
        paths.append(retention.RetentionPath(
            f"atexit (atexit.register callbacks: +{grew} during {run.calls} calls, each keeping its "
            "closure and arguments alive until exit)", "atexit", grew, None, "atexit"))
    if not paths and time.perf_counter() < deadline:
        # Nothing reached from the targets, and no sample to walk back from (objects the GC
        # does not track, in an old container): look under every other module, shallowly.
        for spaces, depth in zip(_other_namespaces(run), (5, 3), strict=True):
            hits = _forward_hits(run, deadline, None, namespaces=spaces, max_depth=depth).get(name, [])
            for path, chain, count in hits[:3]:
                root = path.split("[")[0].split(" ")[0]
                paths.append(retention.RetentionPath(path, root, count, retention.bounds_along(chain), "forward"))
            del hits, spaces
            if paths or time.perf_counter() > deadline:
                break
    return paths


def _function_series(run: _Run, names: list[str]) -> pd.DataFrame:
    """Long frame of the self-retained bytes of the given functions at each checkpoint."""
    rows = [{"call": call, "function": name, "retained_bytes": value - run.self_bytes[name][0]}
            for name in names if name in run.self_bytes
            for call, value in zip(run.x, run.self_bytes[name], strict=True)]
    return pd.DataFrame(rows, columns=["call", "function", "retained_bytes"])


def _series_frame(run: _Run) -> pd.DataFrame:
    return pd.DataFrame({"call": list(run.x), "retained_bytes": list(run.total),
                         "retained_blocks": list(run.total_blocks), "rss": list(run.rss),
                         "native_bytes": list(run.native), "malloc_native_bytes": list(run.native_malloc)})


def judge(run: _Run, survivors: list[tuple[Any, str, str]], seconds: float) -> BisectReport:
    x = list(run.x)
    deadline = time.perf_counter() + run.time_budget
    total = classify(x, run.total, floor=BYTES_FLOOR)
    growth: dict[str, Growth] = {}
    rows = []
    for name, series in run.self_bytes.items():
        g = classify(x, series, floor=FUNC_FLOOR)
        growth[name] = g
        gb = classify(x, run.self_blocks[name], floor=4)
        incl = run.incl_bytes.get(name)
        stats = run.found.stats.get(name)
        rows.append({
            "function": name,
            "calls": stats.calls if stats is not None else math.nan,
            "retained_bytes_per_call": g.rate,
            "retained_bytes_low": g.rate_low,
            "retained_bytes_high": g.rate_high,
            "retained_blocks_per_call": gb.rate,
            "inclusive_bytes_per_call": theil_sen(x, incl)[0] if incl is not None else math.nan,
            "final_bytes": series[-1] - series[0],
            "growth_times": g.growth_times,
            "verdict": g.verdict,
        })
    for name in run.found.functions:
        if name not in growth:
            stats = run.found.stats.get(name)
            rows.append({"function": name, "calls": stats.calls if stats else math.nan,
                         "retained_bytes_per_call": 0.0, "retained_bytes_low": 0.0, "retained_bytes_high": 0.0,
                         "retained_blocks_per_call": 0.0, "inclusive_bytes_per_call": 0.0,
                         "final_bytes": 0.0, "growth_times": 0, "verdict": "clean"})
    suspects = pd.DataFrame(rows)
    order = {"leak": 0, "inconclusive": 1, "plateau": 2, "clean": 3}
    suspects["_rank"] = suspects["verdict"].map(order)
    suspects = suspects.sort_values(["_rank", "retained_bytes_per_call"], ascending=[True, False]) \
        .drop(columns="_rank").reset_index(drop=True)

    found: list[tuple[Any, tuple[str, str]]] = []
    forward_hits = _forward_hits(run, deadline, found)
    by_function: dict[str, list[Any]] = defaultdict(list)
    seen_ids = set()
    for obj, name, _site in survivors:
        by_function[name].append(obj)
        seen_ids.add(id(obj))
    for obj, (name, site) in found:
        if id(obj) not in seen_ids:
            seen_ids.add(id(obj))
            by_function[name].append(obj)
            survivors.append((obj, name, site))
    found.clear()

    culprit = None
    verdict = "clean"
    reason = ""
    retention_paths: list[retention.RetentionPath] = []
    bounded: list[tuple[str, retention.Bound, Growth]] = []
    calls_to_decide = None
    leaking = [n for n in suspects["function"] if growth.get(n) is not None and growth[n].verdict == "leak"
               and n != OUTSIDE]
    for name in leaking:
        paths = _retention(run, name, forward_hits, by_function.get(name, []), deadline)
        bound = next((p.bound for p in paths[:3] if p.bound is not None), None)
        if bound is not None:
            bounded.append((name, bound, growth[name]))
            suspects.loc[suspects["function"] == name, "verdict"] = "plateau" if bound.full else "inconclusive"
            if not retention_paths:
                retention_paths = paths
            continue
        if culprit is None:
            culprit, verdict = name, "leak"
            reason = f"{name} keeps {growth[name].rate:.0f} B per call, growing to the last reading"
            retention_paths = list(paths)
        else:  # a second leak: its holders follow the culprit's
            holders = {p.path.rsplit("[", 1)[0] for p in retention_paths}
            retention_paths.extend(p for p in paths[:2] if p.path.rsplit("[", 1)[0] not in holders)
        if len(retention_paths) >= 5 or time.perf_counter() > deadline:
            break
    native = classify(x, run.native, floor=NATIVE_FLOOR)
    malloc_series = list(run.native_malloc)
    native_malloc = classify(x, malloc_series, floor=NATIVE_FLOOR) if all(map(math.isfinite, malloc_series)) \
        else None
    native_leak = False
    # RSS misses a native leak into memory the process already holds; malloc's own count does not.
    sources = [(g, table) for g, table in ((native_malloc, run.malloc_self), (native, run.rss_self))
               if g is not None and g.verdict == "leak"]
    if culprit is None and sources and total.verdict != "leak":
        native, per_function = sources[0]
        rates = []
        for name, series in per_function.items():
            g = classify(x, series, floor=NATIVE_FLOOR / 2)
            if g.verdict == "leak":
                rates.append((g.rate, name))
        if rates:
            native_leak = True
            verdict = "leak"
            rate, culprit = max(rates)
            reason = ("process memory grows while the Python heap does not: the memory is outside Python's "
                      f"allocator (C extension, ctypes, native library); {culprit} adds "
                      f"{rate / 1024:.0f} KiB of native memory per call")
        else:
            verdict = "inconclusive"
            reason = ("process memory outside Python's heap grows, but no target function's calls account "
                      "for it (threads, the allocator, or code outside the targets)")
    if culprit is None and not native_leak and verdict != "inconclusive":
        if bounded:
            name, bound, g = bounded[0]
            if bound.full:
                verdict, reason = "plateau", f"growth in {name} is held by a {bound} (full)"
            else:
                per_call = max(bound.size / max(run.warmup + run.calls, 1), 1e-9)
                calls_to_decide = int(math.ceil((bound.maxsize - bound.size) / per_call))
                verdict = "inconclusive"
                reason = (f"growth in {name} is held by a {bound}, still filling: about "
                          f"{calls_to_decide} more calls would fill it and decide")
        elif total.verdict == "leak" and growth.get(OUTSIDE) is not None and growth[OUTSIDE].verdict == "leak":
            verdict, reason = "leak", "memory grows, allocated outside the target functions"
            retention_paths = _retention(run, OUTSIDE, forward_hits, by_function.get(OUTSIDE, []), deadline)
        elif total.verdict == "plateau" or (suspects["verdict"] == "plateau").any():
            verdict, reason = "plateau", total.reason if total.verdict == "plateau" else "growth that stopped"
        elif total.verdict == "inconclusive":
            verdict, reason = "inconclusive", total.reason
            calls_to_decide = total.calls_to_decide
        else:
            verdict, reason = "clean", total.reason or "nothing kept"
    types = _growing_types(survivors, culprit, retention_paths)
    path_rows = []
    for path, series in run.path_bytes.items():
        g = classify(x, series, floor=FUNC_FLOOR)
        path_rows.append({"path": " -> ".join(path), "function": path[-1], "bytes_per_call": g.rate,
                          "verdict": g.verdict})
    paths_frame = pd.DataFrame(path_rows, columns=["path", "function", "bytes_per_call", "verdict"])
    if len(paths_frame):
        paths_frame = paths_frame.sort_values("bytes_per_call", ascending=False).reset_index(drop=True)
    # By task: the outermost target frame of each path is what a task or thread runs (an asyncio
    # task's stack starts at its coroutine, a pool thread's at the submitted function).
    task_series: dict[str, list[float]] = {}
    for path, series in run.path_bytes.items():
        acc = task_series.setdefault(path[0], [0.0] * len(series))
        for i, value in enumerate(series):
            acc[i] += value
    task_rows = []
    for task, series in task_series.items():
        g = classify(x, series, floor=FUNC_FLOOR)
        task_rows.append({"task": task, "bytes_per_call": g.rate, "final_bytes": series[-1] - series[0],
                          "verdict": g.verdict})
    tasks_frame = pd.DataFrame(task_rows, columns=["task", "bytes_per_call", "final_bytes", "verdict"])
    if len(tasks_frame):
        tasks_frame = tasks_frame.sort_values("bytes_per_call", ascending=False).reset_index(drop=True)
    errors = dict(run.error_types)
    return BisectReport(
        verdict=verdict, culprit=culprit, retention=[p.path for p in retention_paths],
        retention_details=retention_paths, suspects=suspects, growing_types=types, paths=paths_frame,
        tasks=tasks_frame,
        function_series=_function_series(run, [n for n in suspects["function"].head(4) if n != OUTSIDE]),
        series=_series_frame(run), total=total, native=native, native_leak=native_leak, reason=reason,
        calls=run.calls, warmup=run.warmup, errors=sum(errors.values()), error_types=errors,
        calls_to_decide=calls_to_decide, seconds=seconds)


def _growing_types(survivors: list[tuple[Any, str, str]], culprit: str | None,
                   paths: list[retention.RetentionPath]) -> pd.DataFrame:
    table: dict[tuple[str, str, str], list[int]] = {}
    for obj, name, site in survivors:
        key = (type(obj).__qualname__ if type(obj).__module__ == "builtins"
               else f"{type(obj).__module__}.{type(obj).__qualname__}", name, site)
        entry = table.setdefault(key, [0, 0])
        entry[0] += 1
        try:
            entry[1] += sys.getsizeof(obj)
        except TypeError:
            pass
    root = paths[0].root if paths else None
    rows = [{"type": t, "count": c, "size": s, "function": f, "site": site,
             "root": root if f == culprit else None} for (t, f, site), (c, s) in table.items()]
    frame = pd.DataFrame(rows, columns=["type", "count", "size", "function", "site", "root"])
    return frame.sort_values("size", ascending=False).reset_index(drop=True)
