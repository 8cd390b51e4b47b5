"""Start the attach agent when ``LEAKKIT_AGENT`` asks for it; imported by ``leakkit-agent.pth``.

The ``.pth`` line every Python of the environment runs at start-up reads the variable itself
(microseconds, no import) and imports this module only when it is set and not ``0``. A failure
here never stops the program: the process runs without an agent.
"""
from __future__ import annotations

import os

if os.environ.get("LEAKKIT_AGENT", "0") not in ("", "0"):
    try:
        from .server import start

        start()
    except Exception:  # never stop the program that opted in
        pass
