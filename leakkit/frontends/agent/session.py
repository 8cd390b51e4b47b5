"""One session on the agent's side: options in, progress and the result out, the window ended by the client.

Transport only: the measurement is :func:`leakkit.recording.attach_session.run`; the snapshot of a
running monitor is the monitor's own (:meth:`leakkit.recording.monitor.Monitor.snapshot`).
"""
from __future__ import annotations

import dataclasses
import os
import select
import socket
from collections.abc import Callable
from typing import Any

from .protocol import Lines, send


def options_from(raw: Any) -> Any:
    """:class:`~leakkit.recording.attach_session.Options` from a request, unknown keys dropped, types checked."""
    from ...recording.attach_session import Options

    fields = {f.name: f for f in dataclasses.fields(Options)}
    given = raw if isinstance(raw, dict) else {}
    kept = {}
    for name, value in given.items():
        if name in fields and isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            kept[name] = type(getattr(Options(), name))(min(value, LIMITS.get(name, value)))
    return Options(**kept)


LIMITS = {"duration": 7 * 86400, "top": 1000, "frames": 100, "samples": 1000, "paths_for": 50,
          "path_budget_s": 600, "max_trace_bytes": 1 << 34}  # what a request may ask, at most


def serve(conn: socket.socket, lines: Lines, request: dict[str, Any], *,
          monitors: Callable[[], list[Any]], mode: str) -> None:
    """Run the session ``request`` asks for on ``conn``; a client that leaves ends it (tracing stopped)."""
    from ...recording.attach_session import run
    from ...recording.heap_pacer import Aborted

    options = options_from(request.get("options"))

    def progress(message: str) -> None:
        send(conn, {"event": "progress", "message": message})

    def wait(seconds: float) -> str | None:
        if not lines.pending():
            ready, _, _ = select.select([conn], [], [], seconds)
            if not ready:
                return None
        message = lines.read()
        if message is None:
            raise Aborted("the client went away")
        return "enter" if message.get("op") == "finish" else None

    def check() -> None:
        ready, _, _ = select.select([conn], [], [], 0)
        if ready and not lines.pending() and not conn.recv(1, socket.MSG_PEEK):
            raise Aborted("the client went away")

    try:
        if request.get("op") == "snapshot":
            running = monitors()
            if running:
                reason = str(request.get("reason") or "on demand (leakkit snapshot)")[:200]
                window = request.get("window")
                if isinstance(window, (int, float)) and not isinstance(window, bool) and window > 0:
                    path = running[0].snapshot(reason, duration=float(window))  # what grew over the window
                else:
                    path = running[0].snapshot(reason)  # one look, against the previous snapshot
                with open(path, encoding="utf-8", errors="replace") as handle:
                    text = handle.read(4 * 1024 * 1024)
                send(conn, {"event": "snapshot", "source": "monitor", "path": path, "text": text})
                return
        result = run(options, progress=progress, wait=wait, check=check)
        result["agent"] = {"mode": mode, "pid": os.getpid()}
        send(conn, {"event": "result", "report": result})
    except Aborted:
        return
    except OSError:  # the client's socket broke while we wrote
        return
    except Exception as error:  # leakkit's own failure: said to the client, never raised into the target
        try:
            send(conn, {"event": "error", "message": f"{type(error).__name__}: {error}"})
        except OSError:
            pass
