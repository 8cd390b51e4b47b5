"""Write ``leakkit-agent.pth`` into an environment's site-packages (what a wheel install ships).

Why a command: an editable install (``pip install -e``, ``make install``) does not carry a file
outside the package, so the ``LEAKKIT_AGENT`` opt-in needs this one line written by hand::

    python -m leakkit.frontends.agent.pth          # this interpreter's site-packages
"""
from __future__ import annotations

import os
import sys
import sysconfig

NAME = "leakkit-agent.pth"
LINE = ('import os; os.environ.get("LEAKKIT_AGENT", "0") not in ("", "0") and '
        '__import__("leakkit.frontends.agent.autostart")\n')


def install(directory: str | None = None) -> str:
    """Write the file (replacing an older one) into ``directory`` (default: this Python's purelib)."""
    directory = directory or sysconfig.get_paths()["purelib"]
    path = os.path.join(directory, NAME)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(LINE)
    return path


if __name__ == "__main__":  # pragma: no cover - a one-line command
    print(install(sys.argv[1] if len(sys.argv) > 1 else None))
