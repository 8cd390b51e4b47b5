"""What the ``leakkit`` subcommands share: plot files (checked before slow work, written without
pyplot) and notes for the person at the terminal."""
from __future__ import annotations

import os
import sys
from typing import Any

from ..._errors import InvalidArgumentError


def check_plot_path(path: str, name: str = "plot") -> str:
    """Refuse a plot path matplotlib cannot write, before any slow work: returns its format."""
    from matplotlib.figure import Figure

    from ...recording.files import check_writable_target

    supported = sorted(Figure().canvas.get_supported_filetypes())
    fmt = os.path.splitext(path)[1][1:].lower()
    if os.path.isdir(path):
        raise InvalidArgumentError(f"{name}: expected an image file name (.png, .svg, .pdf, ...), received "
                                   f"{path!r}, a directory")
    if fmt not in supported:
        raise InvalidArgumentError(f"{name}: expected an image file name ending in one of "
                                   f"{', '.join('.' + f for f in supported)}, received {path!r}")
    check_writable_target(path, name)
    return fmt


def save_plot(report: Any, path: str, *, picked: bool = False) -> str:
    """Draw ``report.plot(ax=...)`` into an image file (format from its extension), without pyplot.

    Saved whole or not at all (:func:`leakkit.recording.files.saving`: a full disk leaves the old
    image). ``picked``: leakkit chose the name (next to a recording), so a symlink or a hard link
    planted there is refused, never followed.
    """
    from matplotlib.figure import Figure

    from ...recording.files import refuse_planted, saving

    fmt = check_plot_path(path)
    if picked:
        refuse_planted(path, "plot")
    figure = Figure(figsize=(8, 4), layout="tight")
    report.plot(ax=figure.subplots())
    with saving(path, "plot", binary=True, picked=picked) as handle:
        figure.savefig(handle, format=fmt, dpi=100)
    return path


def note(message: str) -> None:
    """A line for the person at the terminal (stderr), apart from the report on stdout."""
    print(message, file=sys.stderr)
