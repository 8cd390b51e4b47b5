"""Readings of a process's memory, cheapest first; one small function per reading.

Costs measured on the development machine (2 cores, Linux, Python 3.11): allocated blocks
~0.8 us, RSS from ``/proc/self/statm`` ~2 us, open file descriptors ~9 us, GC counts ~0.1 us,
bytes held by pymalloc and malloc ~50 us, RSS/USS/PSS/swap (smaps_rollup) ~230 us. Per-call recording uses only the first two; the rest are read at
checkpoints. A probe that this platform cannot read returns ``None`` and warns once
(:class:`~leakkit._errors.ProbeUnavailableWarning`) naming the probe; leakkit carries on without it.
"""
from __future__ import annotations

import gc
import os
import sys
import threading
import tracemalloc
import warnings
from dataclasses import dataclass

import psutil

from .. import _compat
from .._errors import ProbeUnavailableWarning
from . import malloc as _malloc

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_warned: set[str] = set()
_lock = threading.Lock()
_statm_fd: int | None = None
_statm_pid: int | None = None
_process: psutil.Process | None = None


def _unavailable(probe: str, why: str) -> None:
    if probe not in _warned:
        _warned.add(probe)
        warnings.warn(f"leakkit: probe {probe!r} is unavailable on this platform ({why}); carrying on without it",
                      ProbeUnavailableWarning, stacklevel=3)


def _proc() -> psutil.Process:
    global _process
    if _process is None or _process.pid != os.getpid():
        _process = psutil.Process()
    return _process


def blocks() -> int:
    """Memory blocks currently allocated by Python's allocator (``sys.getallocatedblocks``)."""
    return sys.getallocatedblocks()


def traced_bytes() -> int | None:
    """Bytes traced by tracemalloc, or None when tracemalloc is not tracing (it is only on when asked)."""
    if not tracemalloc.is_tracing():
        return None
    return tracemalloc.get_traced_memory()[0]


def allocated_bytes() -> int | None:
    """Bytes held through pymalloc and malloc together (~50 us), whichever holds an object; None
    where the allocators cannot be read (not glibc). See :mod:`leakkit.probes.malloc`."""
    return _malloc.allocated_bytes()


def _open_statm() -> int | None:
    global _statm_fd, _statm_pid
    pid = os.getpid()
    if _statm_fd is not None and _statm_pid == pid:
        return _statm_fd
    try:
        _statm_fd = os.open("/proc/self/statm", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        _statm_pid = pid
    except OSError:
        _statm_fd = None
    return _statm_fd


def rss() -> int | None:
    """Resident set size in bytes: /proc/self/statm where it exists (~2 us), else psutil."""
    fd = _open_statm()
    if fd is not None:
        try:
            return int(os.pread(fd, 64, 0).split()[1]) * _PAGE
        except OSError:
            pass
    try:
        return _proc().memory_info().rss
    except (psutil.Error, OSError) as error:  # pragma: no cover - platform specific
        _unavailable("rss", str(error))
        return None


def fds() -> int | None:
    """Open file descriptors (or handles on Windows) of this process."""
    try:
        if os.path.isdir("/proc/self/fd"):
            return len(os.listdir("/proc/self/fd")) - 1  # the listing's own descriptor
        proc = _proc()
        return proc.num_fds() if hasattr(proc, "num_fds") else proc.num_handles()
    except (psutil.Error, OSError, AttributeError) as error:  # pragma: no cover - platform specific
        _unavailable("fds", str(error))
        return None


def descriptors(pid: int | None = None) -> list[tuple[str, str]]:
    """(fd, what it refers to: a path, ``socket:[inode]``, ``pipe:[inode]``...) of every open
    descriptor of process ``pid`` (default this one), read from /proc; OSError where it cannot be
    listed. One closed while listed is left out."""
    base = f"/proc/{pid if pid is not None else 'self'}/fd"
    found = []
    for name in os.listdir(base):
        try:
            found.append((name, os.readlink(f"{base}/{name}")))
        except OSError:
            continue
    return found


@dataclass(frozen=True)
class ProcessMemory:
    """Process memory in the smem sense, bytes: USS (unique), PSS (proportional), RSS, swap."""

    rss: int | None
    uss: int | None
    pss: int | None
    swap: int | None


def smaps_rollup(pid: int | None = None) -> ProcessMemory | None:
    """RSS/USS/PSS/swap from one read of ``/proc/<pid>/smaps_rollup`` (Linux 4.14+), or None where
    the kernel gives none (no rollup, or a zombie's).

    All four come from the same page walk, so USS <= RSS always holds. psutil pairs the rollup's
    USS with RSS from ``statm``, whose counters the kernel keeps per CPU and sums lazily: under
    load that RSS lagged the walk by 1.8 MiB (USS 348979200 > RSS 347119616). Raises
    :class:`psutil.NoSuchProcess` or :class:`psutil.AccessDenied` as psutil would.
    """
    where = "self" if pid is None else str(int(pid))
    try:
        with open(f"/proc/{where}/smaps_rollup", "rb") as file:
            text = file.read()
    except PermissionError as error:
        raise psutil.AccessDenied(pid if pid is not None else os.getpid()) from error
    except (FileNotFoundError, ProcessLookupError) as error:
        if pid is not None and not os.path.exists(f"/proc/{where}"):
            raise psutil.NoSuchProcess(pid) from error
        return None  # no rollup on this kernel, or a zombie's (the caller asks psutil)
    except OSError:
        return None
    fields: dict[bytes, int] = {}
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(b":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name.strip()] = int(parts[0]) * 1024
    if not fields:
        return ProcessMemory(0, 0, 0, 0)  # an exiting process's rollup can be empty
    uss = sum(v for k, v in fields.items() if k.startswith(b"Private_"))
    return ProcessMemory(fields.get(b"Rss", 0), uss, fields.get(b"Pss"), fields.get(b"Swap"))


def read_memory(pid: int | None = None) -> ProcessMemory:
    """RSS/USS/PSS/swap of a process (this one by default): one smaps_rollup read where Linux has
    it (~230 us, as psutil's), else psutil's full memory info. Raises psutil's errors."""
    memory = smaps_rollup(pid)
    if memory is not None:
        return memory
    info = (_proc() if pid is None else psutil.Process(pid)).memory_full_info()
    return ProcessMemory(info.rss, getattr(info, "uss", None), getattr(info, "pss", None), getattr(info, "swap", None))


def process_memory(pid: int | None = None) -> ProcessMemory:
    """:func:`read_memory` for checkpoints: a reading this platform refuses warns once and leaves
    USS/PSS/swap out (RSS from statm)."""
    try:
        return read_memory(pid)
    except psutil.AccessDenied as error:
        _unavailable("uss", f"access denied: {error}")
    except (psutil.Error, OSError, AttributeError) as error:  # pragma: no cover - platform specific
        _unavailable("uss", str(error))
    return ProcessMemory(rss(), None, None, None)


def gc_counts() -> tuple[int, int, int]:
    """Objects pending in each GC generation (``gc.get_count``)."""
    return gc.get_count()


def gc_collections() -> int:
    """Total collections the cyclic GC has run, over all generations."""
    return sum(s["collections"] for s in gc.get_stats())


# -- bounded holders: is the growth held by a container that cannot grow past a bound? -------------
@dataclass(frozen=True)
class BoundedHolder:
    """A container with a known bound that gained entries during a trace.

    ``explained`` maps a type name to the number of objects of that type its new entries hold
    (directly, or one container down), scaled by the share of its entries that are new.
    """

    description: str
    size: int
    bound: int
    gained: int
    explained: dict[str, float]

    @property
    def full(self) -> bool:
        return self.size >= self.bound


def type_name(kind: type) -> str:
    """pympler's name for a type, as heap summaries give it: "<class 'x.Y'>" -> "x.Y"."""
    text = str(kind)
    if text.startswith("<class '") and text.endswith("'>"):
        return text[8:-2]
    return text


def _bound_of(holder: object) -> tuple[str, int, int] | None:
    import collections
    import re

    if isinstance(holder, collections.deque):
        if holder.maxlen is not None:
            return (f"deque(maxlen={holder.maxlen})", len(holder), holder.maxlen)
        return None
    if hasattr(holder, "cache_info") and type(holder).__name__ == "_lru_cache_wrapper":
        info = holder.cache_info()
        if info.maxsize is not None:
            name = getattr(holder, "__qualname__", "?")
            return (f"{name} (lru_cache(maxsize={info.maxsize}))", info.currsize, info.maxsize)
        return None
    # the re module's compiled-pattern caches: _cache (_MAXCACHE) and, since 3.12, _cache2 (_MAXCACHE2)
    for attribute, limit, default in (("_cache", "_MAXCACHE", 512), ("_cache2", "_MAXCACHE2", 256)):
        cache = getattr(re, attribute, None)
        if holder is cache and isinstance(cache, dict):
            return (f"re.{attribute}", len(cache), int(getattr(re, limit, default)))
    return None


def _holder_candidates() -> list:
    import collections
    import functools
    import re
    from itertools import compress

    kinds = {collections.deque, type(functools.lru_cache(maxsize=1)(len))}
    objs = gc.get_objects()
    try:
        found = list(compress(objs, map(kinds.__contains__, map(type, objs))))
    finally:
        del objs
    found.extend(c for c in (getattr(re, "_cache", None), getattr(re, "_cache2", None)) if isinstance(c, dict))
    return found


def bounded_census() -> dict[int, int]:
    """Entries held now by every bounded container in the heap, by id (~20 ms per million objects)."""
    census: dict[int, int] = {}
    found = _holder_candidates()
    try:
        for holder in found:
            bound = _bound_of(holder)
            if bound is not None:
                census[id(holder)] = bound[1]
    finally:
        del found
    return census


def bounded_holders(type_names: list[str], baseline: dict[int, int]) -> list[BoundedHolder]:
    """Bounded containers that gained entries since ``baseline`` (a :func:`bounded_census`), and
    how many objects of each of ``type_names`` those new entries hold.

    Objects are counted among a holder's referents and one level further down (a cached list of
    results), then scaled by the share of the holder's entries that are new. Nothing is kept.
    """
    wanted = set(type_names)
    holders: list[BoundedHolder] = []
    found = first = second = None
    try:
        found = _holder_candidates()
        for holder in found:
            bound = _bound_of(holder)
            if bound is None:
                continue
            description, size, limit = bound
            gained = size - baseline.get(id(holder), 0)
            if gained <= 0 or size <= 0:
                continue
            explained: dict[str, float] = dict.fromkeys(wanted, 0.0)
            first = _compat.referents(holder)
            second = _compat.referents(*[o for o in first if gc.is_tracked(o)])
            seen: set[int] = set()
            share = gained / size
            for obj in (*first, *second):
                if id(obj) in seen:
                    continue
                seen.add(id(obj))
                name = type_name(type(obj))
                if name in wanted:
                    explained[name] += share
            first = second = None
            holders.append(BoundedHolder(description, size, limit, gained, explained))
        return holders
    finally:
        del found, first, second


# 3.10 builds a function's opcache on its 1024th run: leakkit's per-call readings get theirs now,
# not in the middle of someone's measurement.
_compat.run_past_opcache(rss, blocks, traced_bytes)
