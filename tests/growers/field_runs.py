"""Run the field service's checks in this interpreter and print one ``RUN-JSON`` line each.

    python tests/growers/field_runs.py [bisect|check ...]      (default: both)

For each of the buggy and the fixed service (``field_service.reset()`` between runs, so each
starts as a fresh service): what ``%leakcheck -n 50`` runs (:func:`leakkit.frontends.check.check`,
the loop the magic, the pytest marker and the fixture share) and ``leakkit.bisect`` at its
defaults (60 calls, 15 s budget). ``FIELD_SERVICE_SEED`` varies the requests between runs.
Used by tests/test_field_service.py (ten runs, each in a fresh interpreter) and by hand.
"""
from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import field_service as fs  # noqa: E402

import leakkit  # noqa: E402
from leakkit.frontends.check import check  # noqa: E402


def _growers(frame) -> list[list]:
    return [[row.holder, row.verdict, row.bound_kind] for row in frame.itertuples()]


def main(kinds: list[str]) -> None:
    for kind in kinds:
        for variant, workload in (("leak", fs.workload), ("fixed", fs.workload_fixed)):
            fs.reset()
            cpu = time.process_time()
            if kind == "check":
                report = check(workload, calls=50, warmup=2, progress=False)
                culprit, retention = None, []
            else:
                report = leakkit.bisect(workload, targets=[fs], progress=False)
                culprit, retention = report.culprit, [str(p) for p in report.retention[:3]]
            print("RUN-JSON " + json.dumps({
                "kind": kind, "variant": variant, "verdict": report.verdict, "culprit": culprit,
                "retention": retention, "growers": _growers(report.growers), "cpu_s": time.process_time() - cpu,
                "text": str(report)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["check", "bisect"])
