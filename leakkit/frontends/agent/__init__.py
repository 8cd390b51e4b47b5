"""``leakkit attach PID``: the agent that runs in the target, its protocol, the client, the ways in.

- :mod:`.server`: the agent thread in the target (:func:`start`, :func:`stop`); what the server
  integrations and the ``LEAKKIT_AGENT`` environment variable (:mod:`.autostart`) start;
- :mod:`.session`: one session on the agent's side; :mod:`.protocol`: JSON lines on a Unix socket;
- :mod:`.client`: finds a target's agent, or injects one (:mod:`.inject`), runs the session,
  writes the report; :func:`leakkit.attach` and the ``attach``/``snapshot`` commands call it.

Importing this package imports only the server (standard library): it runs inside processes that
did not choose leakkit's dependencies.
"""
from __future__ import annotations

from .server import running, start, stop

__all__ = ["running", "start", "stop"]
