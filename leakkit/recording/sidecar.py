"""Metadata of a CSV recording in a JSON file beside it (``worker.csv`` -> ``worker.csv.json``).

Why beside and not inside: a CSV that is nothing but a header and rows is read right by
``pandas.read_csv``, DuckDB and spreadsheets with their defaults, while a ``# comment`` first line
turns the header into data. The sidecar holds what the CSV cannot: who was watched, how often,
the limit, one entry per session that appended to the file.

Layout: ``{"format": "leakkit watch", "version": 1, "sessions": [{...}, ...]}``; each session is
the metadata its writer passed (pid, cmdline, interval, limit_bytes, ...) plus ``started_unix_time_s``.
The file is replaced atomically (written beside, then renamed over), so a reader never sees half of it.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any

VERSION = 1
_MAX = 16 << 20  # characters: a sidecar larger than this is not read


def path_for(csv_path: str | os.PathLike) -> str:
    """The sidecar's path for a recording."""
    return os.fspath(csv_path) + ".json"


def read(csv_path: str | os.PathLike) -> dict[str, Any] | None:
    """The sidecar of ``csv_path`` as a dict, or None when there is none (or it is not ours)."""
    try:
        with open(path_for(csv_path), encoding="utf-8") as handle:
            text = handle.read(_MAX + 1)
        if len(text) > _MAX:  # not ours (ours grow by ~300 bytes a session)
            return None
        data = json.loads(text)
    except (OSError, ValueError, RecursionError):
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
    directory = os.path.dirname(os.path.abspath(path))
    fd, scratch = tempfile.mkstemp(prefix=".leakkit-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
            handle.write("\n")
        os.replace(scratch, path)  # replaces a planted link itself, never writes through it
    except BaseException:
        try:
            os.unlink(scratch)
        except OSError:
            pass
        raise
    return path
