"""A bisect in a forked copy of the session: its result comes back whole, every way it can end
is said, and an overrun or a crash of the copy never reaches the session."""
from __future__ import annotations

import os
import signal
import time

import pytest

from leakkit.frontends.leakcheck_all import forked

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def test_the_result_comes_back_whole_past_the_pipes_buffer():
    payload = bytes(range(256)) * 20_000  # 5 MB: far past a pipe's 64 KiB
    result = forked.run_forked(lambda: (payload, os.getpid()), 30.0)
    assert result[0] == payload and result[1] != os.getpid()


def test_what_the_child_changes_stays_in_the_child():
    kept: list[int] = []
    assert forked.run_forked(lambda: kept.extend(range(100)) or len(kept), 30.0) == 100
    assert kept == []


def test_an_error_in_the_child_is_raised_in_the_session():
    def fails() -> None:
        raise LookupError("no such key")

    with pytest.raises(LookupError, match="no such key"):
        forked.run_forked(fails, 30.0)


class _Unbuildable(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickled with one argument, rebuilt with two: fails
        super().__init__(f"{a}/{b}")


def test_an_error_that_cannot_cross_is_said_in_words():
    def fails() -> None:
        raise _Unbuildable(1, 2)

    with pytest.raises(forked.ChildDied, match="_Unbuildable: 1/2"):
        forked.run_forked(fails, 30.0)


def test_a_child_that_dies_or_overruns_is_said_and_reaped(monkeypatch):
    with pytest.raises(forked.ChildDied, match="ended without a result .killed by SIGKILL"):
        forked.run_forked(lambda: os.kill(os.getpid(), signal.SIGKILL), 30.0)
    monkeypatch.setattr(forked, "KILL_GRACE_S", 0.5)
    started = time.monotonic()
    with pytest.raises(forked.ChildDied, match="overran 1 s and was killed"):
        forked.run_forked(lambda: time.sleep(60), 0.5)
    assert time.monotonic() - started < 10
    with pytest.raises(ChildProcessError):  # every child reaped: none left to wait for
        os.waitpid(-1, os.WNOHANG)


def test_only_a_session_of_one_python_thread_forks():
    import threading

    alone = forked.can_fork()
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait, daemon=True)
    helper.start()
    try:
        assert not forked.can_fork()
    finally:
        stop.set()
        helper.join()
    assert forked.can_fork() == alone


def test_a_socket_or_an_event_loop_opened_in_the_session_keeps_the_bisect_in_it(monkeypatch):
    # a fork shares them: a child reading a shared socket takes the session's data, and one
    # unregistering a shared descriptor from an epoll set unregisters it for the session too.
    # Pipes the session inherited when it started (a make jobserver's) are not the test's.
    import asyncio
    import socket

    monkeypatch.setattr(forked, "_inherited", frozenset())
    inherited_read, inherited_write = os.pipe()
    try:
        assert forked._shared_io() is not None  # not noted as inherited: it counts
        forked.note_inherited()
        assert forked._shared_io() is None
        again = os.dup(inherited_write)  # pytest's capture dups the terminal's pipe per test
        try:
            assert forked._shared_io() is None
        finally:
            os.close(again)
        loop = asyncio.new_event_loop()
        try:
            assert "eventpoll" in (forked._shared_io() or "") or "socket" in (forked._shared_io() or "")
            assert not forked.can_fork()
        finally:
            loop.close()
        assert forked._shared_io() is None
        first, second = socket.socketpair()
        with first, second:
            assert "socket" in (forked._shared_io() or "")
        assert forked._shared_io() is None
    finally:
        os.close(inherited_read)
        os.close(inherited_write)
