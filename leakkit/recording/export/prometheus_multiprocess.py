"""The worker's side of prometheus_client's multiprocess mode: leakkit's gauges in the per-pid files
under ``PROMETHEUS_MULTIPROC_DIR`` that the server's ``MultiProcessCollector`` reads.

Why through prometheus_client's own ``Gauge`` and not by writing its file format: the files are
read by whatever prometheus_client version the server runs, and that is the version installed
beside the worker; its own classes write the format it reads. A deployment in multiprocess mode
imports prometheus_client already, so this costs the worker only the gauges themselves.

Mode ``liveall`` (see :mod:`leakkit.recording.export.prometheus`): the collector labels each
series with the writing process's ``pid``, so leakkit adds no ``pid`` label of its own here, and
only statuses of this process (``status["pid"] == os.getpid()``) are written: a watch of other
processes exports through an endpoint instead.
"""
from __future__ import annotations

import os
from typing import Any

from ..._errors import InvalidArgumentError
from .metrics import FIGURES, LABELS, VERDICT, label_values, number

_NAN = float("nan")


class MultiprocessGauges:
    """prometheus_client ``Gauge`` objects (``liveall``, in no registry) that mirror the status."""

    def __init__(self, defaults: dict[str, str | None]) -> None:
        try:
            from prometheus_client import Gauge, values
        except ImportError:
            raise InvalidArgumentError("multiprocess: expected prometheus_client installed (pip install "
                                       "'leakkit[fleet]'), received an environment without it") from None
        from .prometheus import multiprocess_dir

        if multiprocess_dir() is None:
            raise InvalidArgumentError("multiprocess: expected PROMETHEUS_MULTIPROC_DIR set in the environment "
                                       "(prometheus_client's multiprocess mode), received it unset")
        if "Mmaped" not in getattr(values.ValueClass, "__name__", ""):
            raise InvalidArgumentError("multiprocess: expected prometheus_client imported after "
                                       "PROMETHEUS_MULTIPROC_DIR was set (it picks its mode at import), "
                                       "received one imported before: its gauges would stay in memory")
        self.defaults = defaults
        self._labels = [name for name in LABELS if name != "pid"]  # the collector adds pid
        self._gauges = {figure.key: Gauge(figure.prometheus, figure.help, self._labels, registry=None,
                                          multiprocess_mode="liveall") for figure in FIGURES}
        self._verdict = Gauge(VERDICT.prometheus, VERDICT.help, [*self._labels, "verdict"], registry=None,
                              multiprocess_mode="liveall")
        self._verdicts: dict[tuple[str, ...], set[str]] = {}

    def forked(self) -> None:
        """In a forked child: its own verdict states (prometheus_client opens the child's own files)."""
        self._verdicts = {}

    def set(self, status: dict[str, Any]) -> None:
        """Write one status of this process (statuses of other pids are not this file's)."""
        if status.get("pid") != os.getpid():
            return
        labels = label_values(status, self.defaults)
        key = tuple(labels[name] for name in self._labels)
        for figure in FIGURES:
            value = number(status, figure.key)
            self._gauges[figure.key].labels(*key).set(_NAN if value is None else value)
        verdict = status.get("verdict")
        seen = self._verdicts.setdefault(key, set())
        if verdict is not None:
            seen.add(str(verdict))
        for name in seen:  # a state set: the current verdict 1, the earlier ones 0
            self._verdict.labels(*key, name).set(1.0 if name == verdict else 0.0)
