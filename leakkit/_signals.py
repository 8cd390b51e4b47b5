"""A command leakkit started never outlives it: SIGTERM and SIGHUP end it the way Ctrl-C does.

Why: ``watch([...])``, ``leakkit run`` and ``leakkit watch -- cmd`` start a command and end it when
the watch ends, a ``KeyboardInterrupt`` included. SIGTERM (a supervisor, ``kill``, a CI timeout) and
SIGHUP (the terminal closed) have no handler by default: the process dies on the spot, no
``finally`` runs, and the command it started runs on, orphaned. While such a command runs,
:class:`ending_children` turns those two signals into :class:`Terminated`, a ``KeyboardInterrupt``,
so the code that ends the command on Ctrl-C ends it. The commands it was given
(:meth:`~ending_children.start`, :meth:`~ending_children.adopt`) are ended on leaving too, wherever
the exception landed (between starting the command and entering the ``try`` that ends it, say).
Then the previous handlers come back and the signal is raised again, so the process ends as it
would have (killed by SIGTERM), its commands ended first. SIGINT keeps Python's own behaviour (a
``KeyboardInterrupt``) and is only noted (:attr:`ending_children.signal`), so that a front end can
tell an interrupted run from a finished one.

Only in the main thread (Python runs handlers there), and only over a default disposition: a
program that handles SIGTERM itself keeps its handler (it decides), an ignored signal (``nohup``)
stays ignored. Blocks nest: the outermost installs the handlers, every open block hears the signal
and ends its own commands, the outermost raises the signal again. A second signal while the first
is being handled is noted, not raised, so the clean-up is not itself interrupted.
"""
from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
from types import FrameType
from typing import Any

#: The signals that end a process by default and are turned into :class:`Terminated`.
ENDING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
_OPEN: list[ending_children] = []  # the blocks open in the main thread, outermost first
_STATE = {"raised": False, "holding": 0, "pending": None}


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived while a command leakkit started was running (``signum`` says which)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"{signal.Signals(signum).name} received")
        self.signum = signum


def _on_ending(signum: int, frame: FrameType | None) -> None:
    for block in _OPEN:
        if block.signal in (None, signal.SIGINT):
            block.signal = signum
    if _STATE["raised"]:
        return  # the first one is being handled: this one is noted
    if _STATE["holding"]:
        _STATE["pending"] = signum  # a command is being started: raised once it is adopted
        return
    _STATE["raised"] = True
    raise Terminated(signum)


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    for block in _OPEN:
        if block.signal is None:
            block.signal = signum
    raise KeyboardInterrupt


class ending_children:  # noqa: N801 - a context manager, named for what it does
    """While the block runs, SIGTERM and SIGHUP raise :class:`Terminated` and SIGINT is noted.

    ``signal``: the first of them that arrived (None if none). ``redeliver``: on leaving, raise a
    SIGTERM or SIGHUP that arrived again, under the restored handler (by default the process ends
    of it: it was asked to end, and its commands have been ended).

    Example::

        with ending_children() as guard:
            popen = guard.start(["python", "worker.py"])   # started and adopted at once
            try:
                popen.wait()
            except KeyboardInterrupt:                      # Ctrl-C, SIGTERM or SIGHUP
                popen.terminate()
        if guard.signal == signal.SIGINT: ...              # interrupted: not a finished run
    """

    def __init__(self, *, redeliver: bool = True) -> None:
        self.redeliver = redeliver
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}
        self._children: list[subprocess.Popen] = []
        self._active = False

    def __enter__(self) -> ending_children:
        self.signal = None
        if threading.current_thread() is not threading.main_thread():
            return self  # handlers live in the main thread: nothing to do here
        self._active = True
        _OPEN.append(self)
        for signum in ENDING:
            self._replace(signum, signal.SIG_DFL, _on_ending)
        self._replace(signal.SIGINT, signal.default_int_handler, _on_interrupt)
        return self

    def _replace(self, signum: int, expected: Any, handler: Any) -> None:
        try:
            if signal.getsignal(signum) is expected:
                self._previous[signum] = signal.signal(signum, handler)
        except (OSError, ValueError):  # not settable here
            pass

    def adopt(self, popen: subprocess.Popen) -> subprocess.Popen:
        """End ``popen`` too if the block is left because of SIGTERM or SIGHUP."""
        self._children.append(popen)
        return popen

    def start(self, *args: Any, **kwargs: Any) -> subprocess.Popen:
        """``subprocess.Popen(*args, **kwargs)``, adopted before a signal can come between the two."""
        _STATE["holding"] += 1
        try:
            popen = self.adopt(subprocess.Popen(*args, **kwargs))
        finally:
            _STATE["holding"] -= 1
        pending = _STATE["pending"]
        if pending is not None and not _STATE["holding"]:
            _STATE["pending"] = None
            _STATE["raised"] = True
            raise Terminated(pending)
        return popen

    def __exit__(self, *exc_info: Any) -> None:
        if not self._active:
            return
        try:
            if self.signal in ENDING:
                for popen in self._children:
                    end_tree(popen)
        finally:
            self._children.clear()
            _OPEN.remove(self)
            self._active = False
            for signum, previous in self._previous.items():
                try:
                    if signal.getsignal(signum) in (_on_ending, _on_interrupt):
                        signal.signal(signum, previous)
                except (OSError, ValueError):
                    pass
            installed, self._previous = bool(self._previous), {}
            if not _OPEN:
                _STATE.update(raised=False, holding=0, pending=None)
        if installed and self.redeliver and self.signal in ENDING:
            signal.raise_signal(self.signal)  # under the restored handler: by default, the process ends of it


def end_tree(popen: subprocess.Popen, grace: float = 2.0) -> None:
    """End a command leakkit started and every process it started (a server's workers, a shell's jobs).

    Why the tree: SIGTERM to the command alone ends it, but what it forked is re-parented to init
    and runs on, orphaned, unless the command ends it itself (a server's master does; a script
    that forked and died does not). The descendants are listed before the command is asked to
    end (after, they are no longer its children), the command is ended (SIGTERM, SIGKILL after
    ``grace``), then those still running are ended the same way. Never raises.
    """
    descendants = _descendants(popen.pid) if popen.poll() is None else []
    _end(popen, grace)
    if not descendants:
        return
    try:
        import psutil

        for process in descendants:
            with contextlib.suppress(psutil.Error):
                process.terminate()  # psutil checks the pid was not reused (its start time)
        _gone, alive = psutil.wait_procs(descendants, timeout=grace)
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(alive, timeout=grace)
    except (ImportError, OSError, KeyboardInterrupt):
        pass


def _descendants(pid: int) -> list[Any]:
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:  # gone, no psutil, no /proc: nothing more to end than the command
        return []


def _end(popen: subprocess.Popen, grace: float = 2.0) -> None:
    """End a command politely (SIGTERM), then for good (SIGKILL) after ``grace`` seconds."""
    try:
        if popen.poll() is not None:
            return
        popen.terminate()
        try:
            popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
    except (OSError, subprocess.SubprocessError, KeyboardInterrupt):  # gone already, or a Ctrl-C now
        try:
            popen.kill()
        except OSError:
            pass
