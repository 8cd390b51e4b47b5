"""Injection: start a one-session agent inside a Python process that has none (placeholder)."""
from __future__ import annotations

from typing import Any

from ..._errors import LeakkitError


class InjectionError(LeakkitError):
    """leakkit could not start its agent inside the process; the process is untouched."""


def inject_agent(target: Any, *, progress: Any) -> tuple[str, str]:
    raise InjectionError(f"pid {target.pid}: injection is not available yet: start the process with LEAKKIT_AGENT=1")
