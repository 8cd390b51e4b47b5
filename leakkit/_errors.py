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


class ProcessAccessError(LeakkitError):
    """A process does not exist, or is not ours to read."""


class WorkloadError(LeakkitError):
    """The workload under investigation cannot be measured (it needs arguments, or always raises)."""


class ProbeUnavailableWarning(UserWarning):
    """A probe cannot be read on this platform; leakkit carries on without it."""


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
