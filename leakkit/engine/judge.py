"""From a bisect run's record to a verdict, a culprit and retention paths (no engine inside).

The rules, in order:

* Every holder that grew is a **grower** judged on its own (:mod:`leakkit.analysis.growers`): its
  share of its makers' kept bytes at each checkpoint, its own rate, and its verdict: ``filling``
  or ``plateau`` when something enforces its bound (its type, code that evicts, or the run seeing
  it replace entries), else its series' own (``leak``...). A bound only declared by an attribute's
  name bounds nothing.
* A function **leaks** when the memory its own code allocated and that stays alive grows to the
  last reading (:func:`leakkit.analysis.classify`), not slowing down, and a fair part of it sits
  in a growing holder nothing bounds (a bounded holder explains only its own share). The
  **culprit** made the entries of the fastest such holder, whose own rate heads the report, so
  the first retention path and the culprit always agree; a function whose objects only sit in
  weak-reference caches keyed by leaked objects is not blamed.
* Growth held only by bounded holders is a **plateau** when they are full, else **inconclusive**
  with the calls that would fill them: a cache filling beside a fixed service is not a leak.
  Dead weak references waiting for a prune are pending cleanup: never a leak. Growth that slows
  down (a cache still filling) is **inconclusive** unless the run went on long enough to see it
  stop (**plateau**).
* **Native**: when the Python heap does not grow but malloc's own count of bytes in use does,
  linearly (>= ~4 KiB a call over 60 calls), or RSS does by more than its noise, the memory is
  outside Python's allocator; the wrapped function whose calls add it is the culprit.
"""
from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

from .._sizes import format_size
from ..analysis import Growth, classify, slowing_down, theil_sen
from ..analysis.attribution import OUTSIDE
from ..analysis.growers import Grower, growers_of
from ..reports import bisect_frames as frames
from ..reports.bisect_report import BisectReport
from ..reports.plots import format_rate
from ..retention.paths import Bound, RetentionPath
from .record import BisectRecord, HolderRecord

BYTES_FLOOR = 1024
FUNC_FLOOR = 512
NATIVE_FLOOR = 768 << 10  # RSS: clean runs here move RSS-minus-traced by < 150 KiB (threads: ~470)
MALLOC_FLOOR = 160 << 10  # malloc's count is exact: 4 KiB a call over 60 calls is 240 KiB

def _retention_path(h: HolderRecord) -> RetentionPath:
    return RetentionPath(h.path, h.root, h.new_len - h.old_len, h.bound, h.how, holder=h.holder, kind=h.kind,
                         old_len=h.old_len, new_len=h.new_len, kept_bytes=h.kept_bytes, deep_bytes=h.deep_bytes,
                         side=h.side)


def _holders_of(record: BisectRecord, name: str) -> list[HolderRecord]:
    """Holders whose new entries keep objects ``name`` made, the ones it made the entries of first,
    unbounded before bounded, then by what it made there; one per holder (the threads of a pool
    each have their own ``threading.local`` list)."""
    mine = sorted((h for h in record.holders if h.made.get(name, 0) > 0),
                  key=lambda h: (h.maker != name, h.side is not None, h.bound is not None, -h.made.get(name, 0)))
    seen: set[str] = set()
    out = []
    for h in mine:
        if h.holder not in seen:
            seen.add(h.holder)
            out.append(h)
    return out


def _rate(grower: Grower | None) -> float:
    rate = grower.growth.rate if grower is not None else math.nan
    return rate if math.isfinite(rate) else -math.inf


def judge(record: BisectRecord) -> BisectReport:
    x = record.x
    total = classify(x, record.total_bytes, floor=BYTES_FLOOR)
    growth: dict[str, Growth] = {}
    for name, series in record.self_bytes.items():
        growth[name] = classify(x, series, floor=FUNC_FLOOR)
    growers = growers_of(record.holders, record.x, record.self_bytes, record.calls, record.total_bytes,
                         floor=FUNC_FLOOR)
    notes: list[str] = []
    if record.cut_short:
        notes.append(f"cut short: {record.cut_short}")
    if record.ran_on:
        notes.append(f"ran on: {record.ran_on}")
    notes.extend(record.notes)

    # Each function's own verdict, corrected by what holds its growth.
    verdicts: dict[str, str] = {}
    why: dict[str, str] = {}
    bounds: dict[str, Bound] = {}
    for name, g in growth.items():
        verdict = g.verdict
        if verdict == "leak" and name != OUTSIDE:
            held = _holders_of(record, name)
            real = [h for h in held if h.side is None]
            bound = next((h.bound for h in real[:3] if h.bound is not None), None)
            # a bounded holder explains only its own share: the function still leaks when a
            # fair part of what it keeps sits in a holder nothing bounds, growing on its own
            mine = sum(h.made.get(name, 0) for h in real)
            if any(h.bound is None and growers.get(id(h)) is not None and growers[id(h)].verdict == "leak"
                   and (h.maker == name or h.made.get(name, 0) >= 0.25 * mine) for h in real):
                pass
            elif bound is not None:
                bounds[name] = bound
                verdict = "plateau" if bound.full else "inconclusive"
                why[name] = f"held by a {bound}" + ("" if bound.full else ", still filling")
            elif held and not real:
                dead = any("dead" in (h.side or "") for h in held)
                verdict = "plateau" if dead else "inconclusive"
                why[name] = held[0].side or "side structure"
            elif slowing_down(x, record.self_bytes[name]):
                verdict = "inconclusive"
                why[name] = "growth slowing down (a cache still filling?)"
        verdicts[name] = verdict

    # A leaking function none of whose objects were found in a holder, beside bounded holders that
    # keep most of the growth: its objects are most likely in them (the charging of what entries
    # keep is sampled in heavy heaps), so it is not a leak on that evidence.
    grew = (record.total_bytes[-1] - record.total_bytes[0]) if record.total_bytes else 0.0
    bounded_bytes = sum(h.kept_bytes for h in record.holders if h.side is None and h.bound is not None)
    if grew > 0 and bounded_bytes >= 0.5 * grew:
        for name, verdict in list(verdicts.items()):
            if verdict != "leak" or name == OUTSIDE:
                continue
            if not _holders_of(record, name):
                verdicts[name] = "inconclusive"
                why[name] = "its objects were not found outside the bounded holders that keep most of the growth"
            elif growth[name].rate < 0.1 * total.rate and not growth[name].rate_low > 0:
                verdicts[name] = "inconclusive"
                why[name] = "a small growth beside the bounded holders that keep most of it, not yet significant"
    suspects = _suspects(record, growth, verdicts)
    leaking = [n for n in suspects["function"] if verdicts.get(n) == "leak" and n != OUTSIDE]
    if record.unsettled:
        notes.append(f"not settled when the run ended: {record.unsettled}")
        for name in list(leaking):
            # the run could not go on to tell a cache that fills from a leak
            if slowing_down(x, record.self_bytes[name], ratio=0.7, clearly=False):
                leaking.remove(name)
                verdicts[name] = "inconclusive"
                why[name] = f"growth slowing down, and the time budget ({record.unsettled}) stopped the run"
                suspects.loc[suspects["function"] == name, "verdict"] = "inconclusive"
    cheap = None
    if record.heavy:
        cheap = classify(record.cheap_x, record.cheap_blocks, floor=16)
        notes.append(f"allocated blocks over {int(record.cheap_x[-1]) if record.cheap_x else 0} untraced calls: "
                     f"{cheap.verdict}, {format_rate(cheap.rate, 'blocks')} ({cheap.reason})")
        if cheap.verdict != "leak":
            leaking = []
        elif not leaking:
            # few traced calls: a function whose kept memory rises and that made a growing holder
            # (under 4 traced readings no function has a verdict of its own: the untraced calls decide)
            few = len(x) < 4
            rising = {n for n, g in growth.items() if n != OUTSIDE and g.verdict != "clean" and (
                g.rate > 0 or (few and record.self_bytes[n][-1] > record.self_bytes[n][0]))}
            leaking = [h.maker for h in record.holders if h.side is None and h.bound is None and h.maker in rising
                       and (few or verdicts.get(h.maker) not in ("inconclusive", "plateau"))
                       and h.kept_bytes >= 0.2 * grew][:1]

    culprit = None
    verdict = "clean"
    reason = ""
    calls_to_decide = None
    retention_paths: list[RetentionPath] = []
    # The culprit made what the fastest growing holder nothing bounds keeps (its own rate).
    lead = None
    by_rate = sorted(record.holders, key=lambda h: (growers.get(id(h)) is None or growers[id(h)].verdict != "leak",
                                                    -_rate(growers.get(id(h)))))
    for h in by_rate:
        if h.side is None and h.bound is None and h.maker in leaking:
            culprit, lead = h.maker, growers.get(id(h))
            break
    if culprit is None and leaking:
        culprit = leaking[0]
    if culprit is not None:
        verdict = "leak"
        g = growth[culprit] if lead is None or lead.verdict != "leak" else lead.growth
        who = culprit if lead is None or lead.verdict != "leak" else lead.holder.holder
        if math.isfinite(g.rate):
            reason = (f"{who} keeps {format_size(g.rate, signed=True)} per call "
                      f"[{format_size(g.rate_low, signed=True)}, {format_size(g.rate_high, signed=True)}], "
                      "growing to the last reading" + (f" (its entries made by {culprit})" if who != culprit else ""))
        else:  # too few traced readings for a rate: the untraced calls' blocks decided
            reason = (f"{who}'s kept memory rises over the few traced calls, and allocated blocks grow over the "
                      f"untraced ones ({format_rate(cheap.rate, 'blocks')})" if cheap is not None else
                      f"{who}'s kept memory rises")
        first = [lead.holder] if lead is not None else []
        retention_paths = [_retention_path(h) for h in first + [h for h in _holders_of(record, culprit)
                                                                if h.side is None and all(h is not f for f in first)]][:5]
        orphan = record.orphans.get(culprit)
        if not retention_paths and orphan is not None and not orphan.objects:
            retention_paths.append(RetentionPath(
                f"<no Python referrer found: what {culprit} keeps (made at {orphan.site}) is in no container "
                "that grew and under no object the run made; likely held from C code on its call path "
                "(a reference leak in an extension)>", "C", 0, None, "C"))
            notes.append(f"{culprit}: no Python object was found referring to what it keeps")
        elif not retention_paths and orphan is not None:
            retention_paths.append(RetentionPath(
                f"<held from C: {orphan.objects} {'/'.join(orphan.types)} objects made at {orphan.site} are alive with "
                f"no Python object referring to them; {orphan.c_references} references to them are held by C code "
                "called there (a reference leak: a missing Py_DECREF)>", "C", orphan.objects, None, "C"))
            notes.append(f"{culprit}: {orphan.objects} of {orphan.sampled} sampled survivors have no Python referrer "
                         f"(refcount minus referrers: {orphan.c_references} references held from C)")
        if not retention_paths and record.atexit_added >= max(3, record.calls // 2):
            retention_paths.append(RetentionPath(
                f"atexit (atexit.register callbacks: +{record.atexit_added} during {record.calls} calls, each "
                "keeping its closure and arguments alive until exit)", "atexit", record.atexit_added, None, "atexit"))
        for other in leaking:
            if other != culprit and len(retention_paths) < 5:
                seen = {p.holder or p.path for p in retention_paths}
                retention_paths.extend(_retention_path(h) for h in _holders_of(record, other)[:2]
                                       if h.side is None and h.holder not in seen)
        side = [h for h in _holders_of(record, culprit) if h.side is not None]
        for h in side[:2]:
            notes.append(f"side structure, not blamed: {h.holder} ({h.side})")
        if not retention_paths:
            notes.append(f"no holder found for what {culprit} keeps within the time budget")
    native, native_leak = None, False
    if culprit is None:
        native, native_leak, culprit, nreason = _native(record, total, notes)
        if native_leak:
            verdict, reason = "leak", nreason
        elif nreason:
            verdict, reason = "inconclusive", nreason
    bounded = sorted((h for h in record.holders if h.side is None and h.bound is not None), key=lambda h: -h.kept_bytes)
    if culprit is None and cheap is not None and verdict == "clean":
        verdict = {"leak": "inconclusive"}.get(cheap.verdict, cheap.verdict)
        reason = (f"from allocated blocks after each collection, over {len(record.cheap_x) - 1} readings of untraced "
                  f"calls: {cheap.reason}")
        calls_to_decide = cheap.calls_to_decide
        if cheap.verdict == "leak" and bounded and bounded_bytes >= 0.5 * grew:
            h = next((b for b in bounded if not b.bound.full), bounded[0])  # one still filling decides nothing yet
            per_call = max((h.new_len - h.old_len) / max(record.calls, 1), 1e-9)
            retention_paths = [_retention_path(b) for b in bounded[:3]]
            if h.bound.full:
                verdict, reason = "plateau", f"the growth is held by a {h.bound} (full): {h.holder}"
            else:
                calls_to_decide = int(math.ceil((h.bound.maxsize - h.bound.size) / per_call))
                reason = (f"the growth is held by a {h.bound}, still filling: about {calls_to_decide} more calls "
                          f"would fill it and decide ({h.holder})")
        if verdict == "plateau":
            retention_paths = [_retention_path(h) for h in record.holders if h.bound is not None][:3]
    elif culprit is None and verdict == "clean":
        verdict, reason, calls_to_decide, retention_paths = _no_culprit(
            record, total, growth, verdicts, why, bounds, suspects, retention_paths)
    if culprit is None and not retention_paths and bounded and verdict in ("plateau", "inconclusive"):
        retention_paths = [_retention_path(b) for b in bounded[:3]]  # what the growth was found in
    if native is None:
        native = classify(x, record.native_rss, floor=NATIVE_FLOOR)
    types_frame = frames.growing_types(record, culprit, retention_paths)
    paths_frame, tasks_frame = frames.paths_and_tasks(record)
    errors = dict(record.error_types)
    return BisectReport(
        verdict=verdict, culprit=culprit, retention=[p.path for p in retention_paths],
        retention_details=retention_paths, suspects=suspects, growing_types=types_frame, paths=paths_frame,
        tasks=tasks_frame,
        function_series=frames.function_series(record, [n for n in suspects["function"].head(4) if n != OUTSIDE]),
        series=frames.series_frame(record), total=total, native=native, native_leak=native_leak, reason=reason,
        calls=record.calls, warmup=record.warmup, errors=sum(errors.values()), error_types=errors,
        calls_to_decide=calls_to_decide, seconds=record.seconds, notes=notes, untraced_blocks=cheap,
        growers=frames.growers_frame(list(growers.values()), record.calls),
        untraced=pd.DataFrame({"call": record.cheap_x, "allocated_blocks": record.cheap_blocks, "rss": record.cheap_rss,
                               "malloc_bytes": record.cheap_malloc}))


def _no_culprit(record: BisectRecord, total: Growth, growth: dict[str, Growth], verdicts: dict[str, str],
                why: dict[str, str], bounds: dict[str, Bound], suspects: pd.DataFrame,
                retention_paths: list[RetentionPath]) -> tuple[str, str, int | None, list[RetentionPath]]:
    """The verdict when no target function leaks: bounded, slowing, pending cleanup, outside, or not."""
    calls_to_decide = None
    held = [n for n in suspects["function"] if growth.get(n) is not None and growth[n].verdict == "leak"
            and n != OUTSIDE]
    if held:
        name = held[0]
        paths = [_retention_path(h) for h in _holders_of(record, name)][:3]
        bound = bounds.get(name)
        if bound is not None:
            if bound.full:
                return "plateau", f"growth in {name} is held by a {bound} (full)", None, paths
            per_call = max(bound.size / max(record.warmup + record.calls, 1), 1e-9)
            calls_to_decide = int(math.ceil((bound.maxsize - bound.size) / per_call))
            return ("inconclusive", f"growth in {name} is held by a {bound}, still filling: about "
                    f"{calls_to_decide} more calls would fill it and decide", calls_to_decide, paths)
        if verdicts[name] == "plateau":
            return "plateau", f"growth in {name}: {why.get(name, 'growth that stopped')}", None, paths
        calls_to_decide = 4 * max(record.calls, 1)
        return ("inconclusive", f"growth in {name}: {why.get(name, 'not settled')}; about {calls_to_decide} "
                "more calls would tell a cache that fills from a leak", calls_to_decide, paths)
    if total.verdict == "leak" and growth.get(OUTSIDE) is not None and growth[OUTSIDE].verdict == "leak":
        paths = [_retention_path(h) for h in _holders_of(record, OUTSIDE) if h.side is None][:3]
        return "leak", "memory grows, allocated outside the target functions", None, paths
    if total.verdict == "plateau" or (suspects["verdict"] == "plateau").any():
        return "plateau", total.reason if total.verdict == "plateau" else "growth that stopped", None, retention_paths
    if total.verdict == "inconclusive":
        return "inconclusive", total.reason, total.calls_to_decide, retention_paths
    if total.verdict == "leak":
        calls_to_decide = 4 * max(record.calls, 1)
        return ("inconclusive", "memory grows, but slows down or sits in side structures; about "
                f"{calls_to_decide} more calls would decide", calls_to_decide, retention_paths)
    return "clean", total.reason or "nothing kept", None, retention_paths


def _native(record: BisectRecord, total: Growth, notes: list[str]) -> tuple[Growth, bool, str | None, str]:
    """Native growth: malloc's own count first (exact, sees memory reused in place), RSS second.

    RSS is the witness only where malloc's count cannot be read. Where it can and does not grow,
    RSS beyond the traced heap that grows is pymalloc's arenas kept after frees or tracing's own
    tables (a template engine compiling a fresh module per call under tracemalloc: +17 KiB/call
    of RSS, while untraced the process stays flat): said in a note, never a culprit."""
    x = record.x
    rss = classify(x, record.native_rss, floor=NATIVE_FLOOR)
    malloc_series = record.native_malloc
    readable = bool(malloc_series) and all(map(math.isfinite, malloc_series))
    malloc = classify(x, malloc_series, floor=MALLOC_FLOOR) if readable else None
    if malloc is not None and malloc.verdict == "leak" and malloc.growth_times < 0.7 * malloc.intervals:
        malloc = None  # not linear: allocator noise, not a leak
    if readable and rss.verdict == "leak" and (malloc is None or malloc.verdict != "leak") and total.verdict != "leak":
        notes.append(f"RSS beyond the traced heap grows ({format_size(rss.rate, signed=True)} per call) but malloc's "
                     "bytes in use do not grow steadily: pymalloc arenas kept after frees or tracing's own tables, "
                     "not counted as a native leak (an allocator of its own, outside malloc, would be missed: "
                     "watch the process untraced to tell)")
        rss = replace(rss, verdict="inconclusive")
    sources = [(g, table, floor) for g, table, floor in ((malloc, record.malloc_self, MALLOC_FLOOR),
                                                         (rss, record.rss_self, NATIVE_FLOOR))
               if g is not None and g.verdict == "leak"]
    if not sources or total.verdict == "leak":
        return (malloc if malloc is not None and malloc.verdict == "leak" else rss), False, None, ""
    native, per_function, floor = sources[0]
    rates = []
    for name, series in per_function.items():
        g = classify(x, series, floor=floor / 2)
        if g.verdict == "leak":
            rates.append((g.rate, name))
    if not rates:
        return native, False, None, ("process memory outside Python's heap grows, but no target function's calls "
                                     "account for it (threads, the allocator, or code outside the targets)")
    rate, culprit = max(rates)
    witness = ("RSS grows too" if rss.verdict == "leak" else
               "RSS does not grow yet: the leak reuses memory the process already holds") if native is malloc else \
        "RSS grows"
    return native, True, culprit, ("the Python heap does not grow but malloc's bytes in use do: the memory is "
                                   f"outside Python's allocator (C extension, ctypes, native library); {culprit} adds "
                                   f"{format_size(rate, signed=True)} of native memory per call ({witness})")


def _suspects(record: BisectRecord, growth: dict[str, Growth], verdicts: dict[str, str]) -> pd.DataFrame:
    x = record.x
    rows = []
    for name, series in record.self_bytes.items():
        g = growth[name]
        gb = classify(x, record.self_blocks[name], floor=4)
        incl = record.incl_bytes.get(name)
        calls = record.call_counts.get(name)
        rows.append({
            "function": name,
            "calls": calls if calls is not None else math.nan,
            "retained_bytes_per_call": g.rate,
            "retained_bytes_low": g.rate_low,
            "retained_bytes_high": g.rate_high,
            "retained_blocks_per_call": gb.rate,
            "inclusive_bytes_per_call": theil_sen(x, incl)[0] if incl is not None else math.nan,
            "final_bytes": series[-1] - series[0],
            "growth_times": g.growth_times,
            "verdict": verdicts[name],
        })
    for name in record.functions:
        if name not in growth:
            calls = record.call_counts.get(name)
            rows.append({"function": name, "calls": calls if calls is not None else math.nan,
                         "retained_bytes_per_call": 0.0, "retained_bytes_low": 0.0, "retained_bytes_high": 0.0,
                         "retained_blocks_per_call": 0.0, "inclusive_bytes_per_call": 0.0,
                         "final_bytes": 0.0, "growth_times": 0,
                         "verdict": "not traced" if calls and len(x) < 2 else "clean" if calls else "not called"})
    suspects = pd.DataFrame(rows)
    order = {"leak": 0, "inconclusive": 1, "plateau": 2, "clean": 3, "not traced": 4, "not called": 5}
    suspects["_rank"] = suspects["verdict"].map(order)
    return suspects.sort_values(["_rank", "retained_bytes_per_call"], ascending=[True, False]) \
        .drop(columns="_rank").reset_index(drop=True)
