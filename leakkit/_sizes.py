"""Parse and format memory sizes ("256MiB", "1.5 GB", 4096) the way people write them."""
from __future__ import annotations

import math
import numbers
import re

from ._errors import expected

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
MAX_SIZE = 2**63 - 1  # bytes: what an int64 column holds
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | float | str, name: str = "size") -> int:
    """Bytes from an int, or a string such as '256MiB', '1.5 GB', '4096'; raises InvalidArgumentError.

    At most :data:`MAX_SIZE` (8 EiB, what an int64 column holds): ``10**400`` is refused, never overflowed.
    """
    if isinstance(value, bool) or isinstance(value, bytes):
        raise expected("a size in bytes (int) or a string such as '256MiB' or '1.5 GB'", name, value)
    if isinstance(value, numbers.Integral):
        if value <= 0:
            raise expected("a positive size in bytes", name, value)
        number = value
    elif isinstance(value, numbers.Real):
        try:
            number = float(value)
        except (OverflowError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number <= 0:
            raise expected("a positive size in bytes", name, value)
    elif isinstance(value, str):
        match = _SIZE.match(value) if len(value) <= 100 else None
        if not (match and match.group(2).lower() in _UNITS):
            raise expected("a size in bytes (int) or a string such as '256MiB' or '1.5 GB'", name, value)
        number = float(match.group(1)) * _UNITS[match.group(2).lower()]
        if not math.isfinite(number) or number <= 0:
            raise expected("a positive size such as '256MiB' or '1.5 GB'", name, value)
    else:
        raise expected("a size in bytes (int) or a string such as '256MiB' or '1.5 GB'", name, value)
    if number < 1:  # 0.5 (bytes) would be a limit of 0 B: a unit was surely forgotten
        raise expected("a size of at least 1 byte (a unit forgotten? e.g. '0.5GiB')", name, value)
    if number > MAX_SIZE:
        raise expected("a size of at most 8 EiB", name, value)
    return int(number)


def format_size(nbytes: float, signed: bool = False) -> str:
    """Human-readable binary size: '1.2 MiB', '-340 B'; 'nan' for missing values."""
    try:  # pandas' NA (a nullable column with a gap: a fleet file without that column) is missing too
        if nbytes is None or nbytes != nbytes or math.isnan(float(nbytes)):
            return "n/a"
    except (TypeError, ValueError):
        return "n/a"
    sign = "+" if signed and nbytes > 0 else ("-" if nbytes < 0 else "")
    size = abs(float(nbytes))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            if unit == "B":
                return f"{sign}{size:.0f} {unit}"
            return f"{sign}{size:.1f} {unit}"
        size /= 1024
    return f"{sign}{size:.1f} TiB"


def format_duration(seconds: float) -> str:
    """'3 h 10 min', '42 s', '2 d 4 h' for forecasts."""
    if seconds is None or not math.isfinite(seconds):
        return "never"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.0f} min"
    hours, minutes = divmod(int(round(minutes)), 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
