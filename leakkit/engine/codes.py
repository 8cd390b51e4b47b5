"""Give each target function's code a filename of its own when its filename is shared.

tracemalloc names a frame by ``(filename, line)`` only, and bisect's line map charges a frame to
the target whose code has that line. Code typed at the plain REPL is compiled statement by
statement, every statement from line 1 of ``<stdin>``: ``parse`` and ``remember`` defined in two
statements share ``('<stdin>', 2)``, and so does the statement that calls bisect, so allocations
were charged to the wrong function (measured: the REPL named ``parse`` where a file names
``remember``). ``exec`` (``<string>``) shares its name with every dataclass and namedtuple method
the standard library builds. So for the run, a target function whose code comes from such a
pseudo-file (``<...>``) and whose lines collide with another target's, or whose file name is one
many compilations share, gets a copy of its code under a filename of its own (nested code
included, so closures made during the run carry it too). The source lines stay readable under
the new name (``linecache``), and the original code is put back afterwards.
"""
from __future__ import annotations

import linecache
import types
from collections.abc import Iterable
from typing import Any

SHARED = frozenset({"<stdin>", "<string>", "<console>", "<input>", "<unknown>"})
_MARK = " [leakkit "  # "<stdin> [leakkit 3]": what the renamed code's filename looks like


def _renamed(code: types.CodeType, filename: str) -> types.CodeType:
    consts = tuple(_renamed(c, filename) if isinstance(c, types.CodeType) and c.co_filename == code.co_filename
                   else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _lines(code: types.CodeType) -> set[int]:
    out: set[int] = set()
    stack = [code]
    while stack:
        c = stack.pop()
        out.update(line for _, _, line in c.co_lines() if line is not None)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return out


def original(filename: str) -> str:
    """The filename a renamed code had (any other filename unchanged)."""
    at = filename.find(_MARK)
    return filename[:at] if at > 0 and filename.endswith("]") else filename


def display_site(site: str) -> str:
    """``file:line`` with a renamed file spelled as the user wrote it."""
    file, sep, line = site.rpartition(":")
    return f"{original(file)}{sep}{line}" if sep else site


class Renames:
    """The target functions whose code was given a filename of its own, to put back."""

    def __init__(self) -> None:
        self.done: list[tuple[types.FunctionType, types.CodeType, types.CodeType]] = []
        self.aliases: list[str] = []

    def apply(self, functions: Iterable[types.FunctionType]) -> None:
        """Rename where needed (see the module's docstring); idempotent per function."""
        functions = [f for f in functions if isinstance(f.__code__, types.CodeType)]
        claims: dict[tuple[str, int], set[int]] = {}
        for func in functions:
            code = func.__code__
            if code.co_filename.startswith("<"):
                for line in _lines(code):
                    claims.setdefault((code.co_filename, line), set()).add(id(code))
        for func in functions:
            code = func.__code__
            name = code.co_filename
            if not (name.startswith("<") and name.endswith(">")) or _MARK in name:
                continue
            collides = any(len(claims.get((name, line), ())) > 1 for line in _lines(code))
            if not collides and name not in SHARED:
                continue
            alias = f"{name}{_MARK}{len(self.done) + 1}]"
            new = _renamed(code, alias)
            try:
                func.__code__ = new
            except (TypeError, ValueError):  # pragma: no cover - a function that refuses
                continue
            self.done.append((func, code, new))
            entry = linecache.cache.get(name)
            if entry is not None:  # tracebacks and inspect read the source under the new name too
                linecache.cache[alias] = entry
                self.aliases.append(alias)

    def restore(self) -> None:
        """Put every original code back (unless the workload replaced it meanwhile)."""
        while self.done:
            func, code, new = self.done.pop()
            try:
                if func.__code__ is new:
                    func.__code__ = code
            except (TypeError, ValueError):  # pragma: no cover
                pass
        for alias in self.aliases:
            linecache.cache.pop(alias, None)
        self.aliases.clear()


def renamed_codes(renames: Renames) -> dict[int, Any]:
    """id(renamed code) -> original code, for whatever needs the user's own code object."""
    return {id(new): code for _, code, new in renames.done}
