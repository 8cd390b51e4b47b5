"""Metadata of a CSV recording in a JSON file beside it (``worker.csv`` -> ``worker.csv.json``).

Why beside and not inside: a CSV that is nothing but a header and rows is read right by
``pandas.read_csv``, DuckDB and spreadsheets with their defaults, while a ``# comment`` first line
turns the header into data. The sidecar holds what the CSV cannot: who was watched, how often,
the limit, one entry per session that appended to the file.

Layout: ``{"format": "leakkit watch", "version": 1, "sessions": [{...}, ...]}``; each session is
the metadata its writer passed (pid, cmdline, interval, limit_bytes, ...) plus ``started_unix_time_s``.
The file is replaced atomically (written beside, then renamed over: :func:`leakkit.recording.files.saving`),
so a reader never sees half of it; it is read without blocking and within 16 MiB (a FIFO or a device
planted there reads as no sidecar, and the next session replaces it).
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

from .._errors import LeakkitError, SaveError

VERSION = 1
_MAX = 16 << 20  # characters: a sidecar larger than this is not read


def path_for(csv_path: str | os.PathLike) -> str:
    """The sidecar's path for a recording."""
    return os.fspath(csv_path) + ".json"


def read(csv_path: str | os.PathLike) -> dict[str, Any] | None:
    """The sidecar of ``csv_path`` as a dict, or None when there is none (or it is not ours)."""
    from .files import read_text

    try:
        text = read_text(path_for(csv_path), "sidecar", limit=_MAX)  # larger: not ours (~300 bytes a session)
        data = json.loads(text)
    except (LeakkitError, OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("sessions"), list):
        return None
    data["sessions"] = [s for s in data["sessions"] if isinstance(s, dict)]
    return data


def latest(csv_path: str | os.PathLike) -> dict[str, Any]:
    """The most recent session's metadata (empty when there is no sidecar)."""
    data = read(csv_path)
    return dict(data["sessions"][-1]) if data and data["sessions"] else {}


def add_session(csv_path: str | os.PathLike, kind: str, meta: dict[str, Any]) -> str:
    """Record one more session (``meta`` plus its start time) in the sidecar; returns its path."""
    path = path_for(csv_path)
    data = read(csv_path) or {"format": f"leakkit {kind}", "version": VERSION, "sessions": []}
    data["sessions"].append({**meta, "started_unix_time_s": time.time()})
    from .files import saving

    try:
        with saving(path, "sidecar", picked=True) as handle:  # a name leakkit picks: a planted link is replaced
            json.dump(data, handle, indent=1)
            handle.write("\n")
    except SaveError:
        raise
    except LeakkitError as error:  # a directory or a FIFO where the sidecar goes: a failed save too
        raise SaveError(str(error)) from None
    return path
