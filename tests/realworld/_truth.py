"""Ground truth for the real-library corpus, measured without leakkit.

Every case module in this folder says what a correct investigation concludes (``EXPECT``) and how
to check it independently (``TRUTH``). This module checks it with nothing but the standard
library: tracemalloc for Python memory, glibc's ``mallinfo2`` for malloc'd memory,
``gc.get_referrers``/``sys.getrefcount`` for who holds what. It must never import leakkit.

``TRUTH`` keys (all optional except ``kind``):

* ``kind``: ``"leak"`` (retained memory grows steadily), ``"bounded"`` (it grows, then stops or
  saw-tooths: caches, pools, pruned weak references), ``"clean"`` (nothing kept after warm-up),
  ``"native"`` (malloc'd memory outside Python's allocator grows steadily).
* ``calls``: how many calls the measurement runs (caches need hundreds to show their bound).
* ``min_bytes_per_call``: for leaks, the least growth per call that counts.
* ``root``: an expression that evaluates (in the case module's namespace, top-level modules
  imported on demand) to the holder the report must name; its text contains one of
  ``EXPECT["root"]``.
* ``root_grows_by``: the holder's ``len()`` grows by at least this fraction of the calls.
* ``release``: name of a function of the case that drops what the root holds (through the root):
  afterwards at least ``release_frees`` (default 0.7) of the growth must be gone.
* ``check``: name of a function of the case returning a list of problems (its own check of who
  holds what, for holders no expression reaches: the interpreter's codec search path...).
* ``refleak``: name of a function of the case returning ``(obj, fn)``: calling ``fn()`` leaks
  a reference to ``obj`` from C code (refcount up by one, no new Python referrer).

A case may define ``workload_fixed``: the same service with the bug fixed, which must not leak.

Run as a script on one case file, it prints one JSON line with the measurements (the test
module runs it in a fresh interpreter per case, so cases never see each other's state).
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import importlib
import importlib.util
import inspect
import json
import os
import sys
import tracemalloc
from array import array
from collections.abc import Callable
from types import ModuleType
from typing import Any

WARMUP = 3
CHECKPOINTS = 24


def load_case(path: str) -> ModuleType:
    """Import a case file as a module of its own name (its functions' ``__module__`` is that name)."""
    name = os.path.basename(path)[:-3]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]


def _malloc_reader() -> Callable[[], int] | None:
    try:
        func = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    func.restype = _Mallinfo2
    func.argtypes = []

    def read() -> int:
        info = func()
        return int(info.uordblks + info.hblkhd)
    return read


malloc_in_use = _malloc_reader()


class Runner:
    """Calls a workload (sync, or async on one loop kept for the whole run, as a service would)."""

    def __init__(self, workload: Callable[[], Any]) -> None:
        self.workload = workload
        self.loop = asyncio.new_event_loop() if inspect.iscoroutinefunction(workload) else None

    def __call__(self) -> None:
        if self.loop is not None:
            self.loop.run_until_complete(self.workload())
        else:
            self.workload()

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()


def series(workload: Callable[[], Any], calls: int, *, native: bool = False,
           checkpoints: int = 24) -> dict[str, list[float]]:
    """Retained memory (after a full collection) at evenly spaced checkpoints over ``calls`` calls."""
    run = Runner(workload)
    try:
        for _ in range(WARMUP):
            run()
        gc.collect()
        tracemalloc.start(1)
        every = max(1, calls // checkpoints)
        # preallocated: the measurement must not grow while it measures
        size = calls // every + 2
        x = array("d", [0.0]) * size
        traced = array("d", [0.0]) * size
        malloc = array("d", [0.0]) * size
        k = [0]

        def checkpoint(n: int) -> None:
            gc.collect()
            i = k[0]
            x[i] = n
            traced[i] = tracemalloc.get_traced_memory()[0]
            if native and malloc_in_use is not None:
                # malloc's count includes tracemalloc's own tables: take them out
                malloc[i] = malloc_in_use() - tracemalloc.get_tracemalloc_memory()
            k[0] = i + 1

        checkpoint(0)
        for n in range(1, calls + 1):
            run()
            if n % every == 0 or n == calls:
                checkpoint(n)
        tracemalloc.stop()
    finally:
        run.close()
    n = k[0]
    out = {"x": list(x[:n]), "traced": [t - traced[0] for t in traced[:n]]}
    if native and malloc_in_use is not None:
        out["malloc"] = [m - malloc[0] for m in malloc[:n]]
    return out


def per_call(x: list[float], y: list[float], start_frac: float = 0.0) -> float:
    """Least-squares slope (bytes per call) of the part of the series after ``start_frac``."""
    k = int(len(x) * start_frac)
    xs, ys = x[k:], y[k:]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((a - mx) ** 2 for a in xs)
    return sum((a - mx) * (b - my) for a, b in zip(xs, ys, strict=True)) / den if den else 0.0


def judge_series(x: list[float], y: list[float], kind: str, min_bytes_per_call: float) -> tuple[bool, str]:
    """Does the series have the shape ``kind`` says? (verdict rules of the ground truth, not leakkit's)"""
    total = y[-1]
    half = len(y) // 2
    rise_late = max(y[half:]) - max(y[:half + 1])
    slope_all = per_call(x, y)
    slope_late = per_call(x, y, 0.5)
    desc = (f"growth {total:.0f} B over {x[-1]:.0f} calls, slope {slope_all:.1f} B/call, "
            f"late slope {slope_late:.1f} B/call, late rise {rise_late:.0f} B")
    if kind in ("leak", "native"):
        ok = slope_all >= min_bytes_per_call and slope_late >= 0.5 * slope_all
    elif kind == "bounded":
        # it may fill (or saw-tooth) but the second half never climbs past the first half's peak
        # by more than a little: 4 KiB or 5% of what it holds
        ok = rise_late <= max(4096.0, 0.05 * max(y))
    elif kind == "clean":
        ok = max(y) <= 16384 and abs(slope_late) < 16
    else:
        raise ValueError(f"unknown TRUTH kind {kind!r}")
    return ok, desc


def resolve(module: ModuleType, expression: str) -> Any:
    """Evaluate a root expression as a person types it, importing its leading dotted module path."""
    namespace = dict(vars(module))
    namespace[module.__name__] = module
    head = expression.split("[", 1)[0].split("(", 1)[0]
    parts = head.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        if parts[0] in namespace and i == 1:
            break
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        namespace.setdefault(parts[0], sys.modules[parts[0]])
        break
    return eval(expression, namespace)  # noqa: S307 - our own case files' root expressions


def check_case(path: str) -> dict[str, Any]:
    """All ground-truth measurements of one case, as a JSON-able dict (``ok`` False lists why)."""
    module = load_case(path)
    truth = module.TRUTH
    kind = truth["kind"]
    calls = truth.get("calls", 200)
    min_rate = truth.get("min_bytes_per_call", 64.0)
    problems: list[str] = []
    out: dict[str, Any] = {"case": module.__name__, "kind": kind}

    root = None
    len_before = None
    if "root" in truth:
        Runner(module.workload)()  # some holders exist only once the service has run
        if not any(r in truth["root"] for r in module.EXPECT["root"]):
            problems.append(f"TRUTH root {truth['root']!r} contains none of EXPECT root {module.EXPECT['root']}")
        root = resolve(module, truth["root"])
        len_before = len(root) if hasattr(root, "__len__") else None
        root = True  # hold no reference: releasing through the root must be able to free it all

    s = series(module.workload, calls, native=(kind == "native"), checkpoints=truth.get("checkpoints", CHECKPOINTS))
    y = s["malloc"] if kind == "native" else s["traced"]
    if kind == "native" and "malloc" not in s:
        problems.append("no mallinfo2 here: cannot measure native growth")
    ok, desc = judge_series(s["x"], y, kind, min_rate)
    out["series"] = desc
    out["traced_end_bytes"] = s["traced"][-1]
    if kind == "native":
        traced_rate = per_call(s["x"], s["traced"])
        out["traced_slope"] = traced_rate
        if traced_rate > 0.1 * per_call(s["x"], y):
            problems.append(f"native case but the Python heap grows too ({traced_rate:.0f} B/call)")
    if not ok:
        problems.append(f"not {kind}: {desc}")

    if root is not None and len_before is not None and "root_grows_by" in truth:
        grew = len(resolve(module, truth["root"])) - len_before
        out["root_len_growth"] = grew
        need = truth["root_grows_by"] * (calls + WARMUP)
        if grew < need:
            problems.append(f"{truth['root']} grew by {grew} entries over {calls} calls, expected >= {need:.0f}")

    if "check" in truth:
        problems.extend(getattr(module, truth["check"])())

    if "release" in truth:
        frac = truth.get("release_frees", 0.7)
        gc.collect()
        tracemalloc.start(1)
        run = Runner(module.workload)
        try:
            for _ in range(calls):
                run()
        finally:
            run.close()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0]
        getattr(module, truth["release"])()
        gc.collect()
        left = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        freed = (grown - left) / grown if grown > 0 else 0.0
        out["release_freed"] = freed
        if freed < frac:
            problems.append(f"releasing {truth.get('root', 'the root')} freed {freed:.0%} of {grown} B, "
                            f"expected >= {frac:.0%}")

    if "refleak" in truth:
        obj, fn = getattr(module, truth["refleak"])()
        gc.collect()
        before_rc, before_ref = sys.getrefcount(obj), len(gc.get_referrers(obj))
        for _ in range(10):
            fn()
        gc.collect()
        after_rc, after_ref = sys.getrefcount(obj), len(gc.get_referrers(obj))
        out["refleak"] = {"refcount_delta": after_rc - before_rc, "referrers_delta": after_ref - before_ref}
        if after_rc - before_rc < 10 or after_ref != before_ref:
            problems.append(f"expected 10 references held from C (refcount +10, referrers +0), got "
                            f"refcount {after_rc - before_rc:+d}, referrers {after_ref - before_ref:+d}")
        del obj, fn

    fixed = getattr(module, "workload_fixed", None)
    if fixed is not None:
        f = series(fixed, calls, native=(kind == "native"), checkpoints=truth.get("checkpoints", CHECKPOINTS))
        fy = f["malloc"] if kind == "native" else f["traced"]
        ok_b, desc_b = judge_series(f["x"], fy, "bounded", 0)
        rate = per_call(f["x"], fy, 0.5)
        leak_rate = per_call(s["x"], y)
        out["fixed"] = desc_b
        # flat, or a cache still filling at a rate that is nothing next to the leak's (2%)
        if not (ok_b or rate <= 0.02 * leak_rate):
            problems.append(f"the fixed variant still grows: {desc_b}")

    out["problems"] = problems
    out["ok"] = not problems
    return out


if __name__ == "__main__":
    result = check_case(sys.argv[1])
    print("TRUTH-JSON " + json.dumps(result))
