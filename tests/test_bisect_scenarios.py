"""leakkit.bisect on leak scenarios with known answers, each in a fresh interpreter (as users meet it).

Every file in tests/scenarios/ defines ``workload`` and ``EXPECT`` (verdicts, culprits, roots), the
same contract as the scoring script the project is judged by. A scenario passes when the verdict
is one of the expected ones, the culprit matches (a suffix of the qualified name, or None), and
an expected root name appears in one of the first three retention paths.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = sorted(f for f in os.listdir(os.path.join(HERE, "scenarios")) if f.endswith(".py") and f[0] == "s")

CHILD = r"""
import importlib.util, json, sys
path = sys.argv[1]
name = path.rsplit("/", 1)[-1][:-3]
spec = importlib.util.spec_from_file_location(name, path)
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
import leakkit
# time_budget: the reference-path walk stops at a deadline (2 s by default); on a loaded machine
# that cut s21's walk short before it reached METADATA. 120 s is an upper bound, not a pace.
report = leakkit.bisect(module.workload, targets=[module], calls=60, time_budget=120)
print("RESULT " + json.dumps({"verdict": report.verdict, "culprit": report.culprit,
                              "retention": [str(p) for p in report.retention[:3]], "expect": module.EXPECT,
                              "text": str(report)}))
"""


def _culprit_ok(got: str | None, accepted: list) -> bool:
    if None in accepted:
        return got is None
    return got is not None and any(got == a or got.endswith("." + a) for a in accepted)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_gets_the_known_answer(scenario: str) -> None:
    path = os.path.join(HERE, "scenarios", scenario)
    proc = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True, timeout=180)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stderr[-2000:]
    got = json.loads(lines[-1][len("RESULT "):])
    expect = got["expect"]
    detail = got["text"]
    assert got["verdict"] in expect["verdict"], detail
    assert _culprit_ok(got["culprit"], expect["culprit"]), detail
    if expect["root"] and "leak" in expect["verdict"]:
        assert any(root in path for root in expect["root"] for path in got["retention"]), detail
