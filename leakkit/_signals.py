"""A command leakkit started never outlives it: SIGTERM and SIGHUP end it the way Ctrl-C does.

Why: ``watch([...])``, ``leakkit run`` and ``leakkit watch -- cmd`` start a command and end it when
the watch ends, a ``KeyboardInterrupt`` included. SIGTERM (a supervisor, ``kill``, a CI timeout) and
SIGHUP (the terminal closed) have no handler by default: the process dies on the spot, no
``finally`` runs, and the command it started runs on, orphaned. While such a command runs,
:class:`ending_children` turns those two signals into :class:`Terminated`, a ``KeyboardInterrupt``,
so the code that ends the command on Ctrl-C ends it; on leaving, the previous handlers come back
and the signal is raised again, so the process ends as it would have (killed by SIGTERM), its
command ended first. SIGINT keeps Python's own handler and is only noted (:attr:`ending_children.signal`),
so that a front end can tell an interrupted run from a finished one.

Only in the main thread (Python runs handlers there), and only over a default disposition: a
program that handles SIGTERM itself keeps its handler (it decides), an ignored signal (``nohup``)
stays ignored. A second signal while the first is being handled is noted, not raised, so the clean-up
(ending the command) is not itself interrupted.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

#: The signals that end a process by default and are turned into :class:`Terminated`.
ENDING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived while a command leakkit started was running (``signum`` says which)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"{signal.Signals(signum).name} received")
        self.signum = signum


class ending_children:  # noqa: N801 - used as a context manager, like contextlib's helpers
    """While the block runs, SIGTERM and SIGHUP raise :class:`Terminated` and SIGINT is noted.

    ``signal``: the first of them that arrived (None if none). ``redeliver``: on leaving, raise a
    SIGTERM or SIGHUP that arrived again under the restored handler (by default, the process ends
    of it: it was asked to end; its command has been ended).

    Example::

        with ending_children() as caught:
            frame = watch(["python", "worker.py"])   # ends the worker on SIGTERM, then leakkit ends
        if caught.signal == signal.SIGINT: ...        # interrupted: not a finished run
    """

    def __init__(self, *, redeliver: bool = True) -> None:
        self.redeliver = redeliver
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> ending_children:
        self.signal = None
        if threading.current_thread() is not threading.main_thread():
            return self  # handlers can only be set in the main thread: nothing to do here
        for signum in ENDING:
            self._replace(signum, signal.SIG_DFL, self._terminate)
        self._replace(signal.SIGINT, signal.default_int_handler, self._interrupt)
        return self

    def _replace(self, signum: int, expected: Any, handler: Any) -> None:
        try:
            if signal.getsignal(signum) is expected:
                self._previous[signum] = signal.signal(signum, handler)
        except (OSError, ValueError):  # not settable here
            pass

    def _terminate(self, signum: int, frame: FrameType | None) -> None:
        first = self.signal is None
        if first or self.signal == signal.SIGINT:
            self.signal = signum
        if first:
            raise Terminated(signum)

    def _interrupt(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signum
        raise KeyboardInterrupt

    def __exit__(self, *exc_info: Any) -> None:
        for signum, previous in self._previous.items():
            try:
                if signal.getsignal(signum) in (self._terminate, self._interrupt):
                    signal.signal(signum, previous)
            except (OSError, ValueError):
                pass
        self._previous.clear()
        if self.redeliver and self.signal in ENDING:
            signal.raise_signal(self.signal)  # under the restored handler: by default, the process ends of it
