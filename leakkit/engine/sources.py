"""The functions a module's source file defines, read from its code, not from its namespace.

A function that only a framework's registry keeps (a decorator that registers it and returns
something else, a lambda handed to ``atexit`` or a signal) is reachable from nothing bisect can
walk, but its allocations are still made by lines of the target's file. The module's own code
object lists every function the file defines (``co_consts``, recursively), with its qualified name
(``co_qualname``; built from the nesting on 3.10), so the line map can cover them all.

The module's code is read from its up-to-date ``.pyc`` (``__cached__``, whose header names the
source's mtime and size or hash: what the import itself checks; ~1 ms for 3,800 lines) or, when
there is none, compiled from the source (~20-90 ms for a few thousand lines; a file over
``MAX_SOURCE`` is not compiled). Either is used only when it agrees with the live code: every
live function of the file found must have the same bytecode and line table at the same place,
so a file edited since its import never maps lines to the wrong function.
"""
from __future__ import annotations

import importlib.util
import os
import types
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_SOURCE = 512 * 1024  # bytes of source compiled when no up-to-date .pyc exists
_OPTIMIZED = 0x1  # CO_OPTIMIZED: a function's code (a class body or a module has not got it)
_COMPREHENSIONS = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"})


@dataclass
class SourceCode:
    """Every function code object a source file defines, keyed by (co_name, first line)."""

    filename: str
    qualnames: dict[tuple[str, int], str] = field(default_factory=dict)
    codes: dict[tuple[str, int], types.CodeType] = field(default_factory=dict)
    tops: list[tuple[str, types.CodeType]] = field(default_factory=list)  # not nested in a function

    def qualname(self, code: types.CodeType) -> str | None:
        """The qualified name of a live code object of this file (3.10 has no ``co_qualname``)."""
        return self.qualnames.get((code.co_name, code.co_firstlineno))

    def agrees(self, live: Iterable[types.CodeType]) -> bool:
        """Whether the live code objects of this file are the ones read here (at least one, and
        no function changed, moved or missing)."""
        checked = 0
        for code in live:
            if code.co_filename != self.filename:
                continue
            mine = self.codes.get((code.co_name, code.co_firstlineno))
            if mine is None or mine.co_code != code.co_code or list(mine.co_lines()) != list(code.co_lines()):
                return False
            checked += 1
        return checked > 0


def read(path: str, cached: str | None, filename: str) -> SourceCode | None:
    """The functions of the source file ``path`` (``cached``: its ``.pyc``, if any), named as
    the live code names its file (``filename``); None when neither can be read."""
    code = _from_pyc(path, cached) if cached else None
    if code is None:
        code = _compiled(path, filename)
    if code is None:
        return None
    source = SourceCode(filename)
    stack: list[tuple[types.CodeType, str, bool, bool]] = [(code, "", False, False)]
    while stack:
        parent, prefix, in_function, nested = stack.pop()
        for const in parent.co_consts:
            if not isinstance(const, types.CodeType):
                continue
            is_function = bool(const.co_flags & _OPTIMIZED)
            qualname = getattr(const, "co_qualname", None) or (
                f"{prefix}.<locals>.{const.co_name}" if in_function else
                f"{prefix}.{const.co_name}" if prefix else const.co_name)
            if is_function:
                key = (const.co_name, const.co_firstlineno)
                source.qualnames.setdefault(key, qualname)
                source.codes.setdefault(key, const)
                if not nested and const.co_name not in _COMPREHENSIONS:
                    source.tops.append((qualname, const))
            stack.append((const, qualname, is_function, nested or is_function))
    return source


def _from_pyc(path: str, cached: str) -> types.CodeType | None:
    """The code in ``cached`` if its header says it was compiled from ``path`` as it is now."""
    import marshal

    try:
        with open(cached, "rb") as f:
            data = f.read()
        if data[:4] != importlib.util.MAGIC_NUMBER or len(data) < 16:
            return None
        flags = int.from_bytes(data[4:8], "little")
        if flags & 0b1:  # hash-based: the source's hash is in the header
            with open(path, "rb") as f:
                if importlib.util.source_hash(f.read()) != data[8:16]:
                    return None
        else:
            st = os.stat(path)
            if (int.from_bytes(data[8:12], "little") != int(st.st_mtime) & 0xFFFFFFFF
                    or int.from_bytes(data[12:16], "little") != st.st_size & 0xFFFFFFFF):
                return None
        code = marshal.loads(memoryview(data)[16:])
    except Exception:  # unreadable, truncated, another interpreter's
        return None
    return code if isinstance(code, types.CodeType) else None


def _compiled(path: str, filename: str) -> types.CodeType | None:
    try:
        if os.path.getsize(path) > MAX_SOURCE:
            return None
        with open(path, "rb") as f:
            source = importlib.util.decode_source(f.read())
        with warnings.catch_warnings():  # a SyntaxWarning the import already gave, not ours to print
            warnings.simplefilter("ignore")
            return compile(source, filename, "exec", dont_inherit=True)
    except Exception:  # not Python source, unreadable, a syntax this interpreter refuses
        return None


__all__ = ["MAX_SOURCE", "SourceCode", "read"]
