"""Errors leakkit raises: each message names what was expected and what was received."""
from __future__ import annotations

from typing import Any


class LeakkitError(Exception):
    """Base class of every error leakkit raises on purpose."""


class InvalidArgumentError(LeakkitError, ValueError):
    """An argument had the wrong type or value."""


class UnknownOptionError(LeakkitError, TypeError):
    """An option name leakkit does not know."""


class NotARecordingError(LeakkitError, ValueError):
    """A file that was expected to hold a leakkit recording (or an mprof .dat) does not."""


class MixedProcessesError(InvalidArgumentError):
    """A memory series mixes several processes' samples (rows of several pids, or a file several
    processes appended to with no pid column): a line through them is no process's, so it is
    refused rather than fitted."""


class ProcessAccessError(LeakkitError):
    """A process does not exist, or is not ours to read."""


class WorkloadError(LeakkitError):
    """The workload under investigation cannot be measured (it needs arguments, or always raises)."""


class ProbeUnavailableWarning(UserWarning):
    """A probe cannot be read on this platform; leakkit carries on without it."""


class RecordingStoppedWarning(UserWarning):
    """A file leakkit was writing (a stream, a watch or monitor CSV) failed, e.g. a full disk.

    leakkit stops writing that file and keeps recording in memory: its own failure never changes
    what the traced or watched program does.
    """


def describe(value: Any) -> str:
    """A short 'received' description: the type, and the value when it is short."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def expected(what: str, name: str, value: Any) -> InvalidArgumentError:
    """Build the standard 'expected X, received Y' error for argument `name`."""
    return InvalidArgumentError(f"{name}: expected {what}, received {describe(value)}")


def check_options(func: str, options: dict, known: set[str] | frozenset[str]) -> None:
    """Raise UnknownOptionError naming the unknown options and the known ones."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UnknownOptionError(
            f"{func}() got unknown option(s) {', '.join(unknown)}; expected one of: {', '.join(sorted(known))}"
        )


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0b, 0x20), 0x7f, *range(0x80, 0xa0))}


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters (escape sequences) shown as ``\\xNN``, newlines and tabs kept.

    Function names, paths and command lines come from recordings and processes anyone could
    have written; printed raw, an escape sequence could rewrite the screen or the terminal title.
    """
    return text.translate(_CONTROL)
