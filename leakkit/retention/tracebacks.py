"""Where an object was allocated, as tracemalloc's raw frames: including what 3.11's tracemalloc misses.

CPython 3.11 gives an object with a managed dict a memory block that starts two pointers before
its GC header, and ``tracemalloc._get_object_traceback`` looks it up at the header: such objects
read as untraced. Here the block is looked up where it starts (3.10 has no managed dicts; 3.12
and later find it themselves).
"""
from __future__ import annotations

import sys
import tracemalloc
from typing import Any

from ..probes import containers as C

_get_object_traceback = tracemalloc._get_object_traceback


def _managed_dict_lookup() -> Any:
    """CPython 3.11's tracemalloc misses objects with a managed dict: their memory block starts
    two pointers before the GC header. Look the block up where it starts (3.10 has no managed
    dicts; 3.12 and later find it themselves): in C when built, else through ctypes (slower)."""
    if sys.version_info[:2] != (3, 11):
        return None
    try:
        from ..probes import _containerscan
    except ImportError:
        _containerscan = None
    if _containerscan is not None and hasattr(_containerscan, "managed_traceback"):
        return _containerscan.managed_traceback
    try:
        import ctypes

        func = ctypes.pythonapi._PyTraceMalloc_GetTraceback
    except (ImportError, AttributeError):  # pragma: no cover - not CPython
        return None
    func.restype = ctypes.py_object
    func.argtypes = [ctypes.c_uint, ctypes.c_size_t]
    offset = 16 + 2 * ctypes.sizeof(ctypes.c_void_p)  # PyGC_Head + the managed dict's two pointers
    return lambda obj: func(0, id(obj) - offset)


_managed = _managed_dict_lookup()
_MANAGED_DICT = 1 << 4


def raw_traceback(obj: Any) -> tuple | None:
    """Raw frames (most recent first) of where ``obj`` was allocated, or None if untraced."""
    tb = _get_object_traceback(obj)
    if tb is None and _managed is not None and type(obj).__flags__ & _MANAGED_DICT and not C.is_a(obj, type):
        tb = _managed(obj)
    return tb
