"""What an exporter does in a forked child: start over as the child's own, never carry the parent's.

Why: a monitor goes on in a forked child (gunicorn ``--preload``, a pool) with its listeners
copied, and so are the exporters it feeds. The copy holds what belonged to the parent: its
latest statuses (a scrape of the child would show the parent's pid with figures that never move
again), its buffered rows (written by the child, they would be the parent's file twice), a lock
another thread of the parent may have held at the fork (the child's first status would wait on
it forever), and a listening socket (the child holding it keeps the parent's port open after
the parent ends, where scrapes would hang). Each exporter class registers here and implements
``_after_fork()``, run in the child right after the fork, before any thread of its own runs;
an exporter used outside a monitor (a watch's FleetWriter) is made safe the same way.
"""
from __future__ import annotations

import os
import weakref
from typing import Any

_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()


def track(exporter: Any) -> None:
    """Have ``exporter._after_fork()`` called in every forked child while the exporter lives."""
    _LIVE.add(exporter)


def _in_child() -> None:
    for exporter in list(_LIVE):
        try:
            exporter._after_fork()
        except Exception:  # the child runs on; the exporter's next call says what is wrong
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_child)
