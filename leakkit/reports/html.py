"""What every report's ``_repr_html_`` shares: its plot as an inline PNG.

A notebook shows a report as HTML with its plot under the text; the figure is drawn on a
matplotlib ``Figure`` of its own, not through pyplot, so showing a report neither opens a window
nor leaves a figure in pyplot's registry (a program that counts its open figures sees none more).
"""
from __future__ import annotations

from typing import Any


def figure_html(report: Any, *, size: tuple[float, float] = (6, 3), dpi: int = 80) -> str:
    """``report.plot(ax=...)`` drawn into an ``<img>`` tag (PNG, base64), or ``""`` if it cannot be drawn.

    A plot is a nicety: whatever stops it (no matplotlib, a report with nothing to draw) must not
    hide the verdict the HTML states, so any failure gives an empty string.

    Example:
        >>> f"<div>{html.escape(str(report))}{figure_html(report)}</div>"  # doctest: +SKIP
    """
    try:
        import base64
        import io

        from matplotlib.figure import Figure

        figure = Figure(figsize=size)
        report.plot(ax=figure.subplots())
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        return f"<img src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'/>"
    except Exception:  # a plot is a nicety: never let it hide the verdict
        return ""
