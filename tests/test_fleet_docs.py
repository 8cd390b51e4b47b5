"""docs/fleet.md's artefacts are checked: the rules file passes promtool, the Grafana dashboard
loads and asks only for metrics leakkit exports, and the page shows the rules and the SQL as
they are (the per-worker statement as leakkit runs it; the row-by-row DuckDB view runs, keeping
only the newest version of each slice)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from leakkit import FleetWriter
from leakkit.analysis import fleet_sql
from leakkit.recording.export.metrics import FIGURES, VERDICT

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGE = (DOCS / "fleet.md").read_text()
NAMES = {f.prometheus for f in FIGURES} | {VERDICT.prometheus}


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE, re.S)


def test_the_rules_pass_promtool_and_the_page_shows_them_as_they_are():
    rules = (DOCS / "fleet" / "leakkit-rules.yml").read_text()
    assert rules.rstrip() + "\n" in _blocks("yaml")
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    done = subprocess.run([promtool, "check", "rules", str(DOCS / "fleet" / "leakkit-rules.yml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "SUCCESS: 5 rules found" in done.stdout, done.stdout + done.stderr
    used = set(re.findall(r"leakkit_[a-z_]+", rules)) - {"leakkit_leaking_workers", "leakkit_process_memory_hours_to_limit"}
    assert used <= NAMES, used - NAMES


def test_the_dashboard_loads_and_asks_only_for_exported_metrics():
    dashboard = json.loads((DOCS / "fleet" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(dashboard["panels"]) >= 6 and all(exprs)
    used = {name for e in exprs for name in re.findall(r"leakkit_[a-z_]+", e)}
    assert used <= NAMES and "leakkit_process_memory_uss_bytes" in used, used - NAMES
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"service", "version"}


def test_the_page_shows_the_per_worker_sql_leakkit_runs():
    assert fleet_sql.workers("rss", None).strip() + "\n" in _blocks("sql")


def test_the_row_by_row_view_keeps_the_newest_version_of_each_slice(tmp_path):
    writer = FleetWriter(tmp_path, host="h", service="s", every=1, flush_s=10)
    for i in range(25):  # three versions of the slice; the last superseded one lingers until close
        writer.add({"pid": 7, "unix_time_s": 1_733_443_200.0 + i, "uss_bytes": 1000 + i, "verdict": "flat"})
    on_disk = [n for _r, _d, names in os.walk(tmp_path) for n in names]
    assert len(on_disk) == 2  # the current version and the one it superseded
    view = _blocks("sql")[1].split(";")[0].replace("/var/lib/leakkit/fleet", str(tmp_path))
    con = duckdb.connect()
    con.execute(view)
    assert con.execute("SELECT count(*), max(uss_bytes), count(DISTINCT pid) FROM samples").fetchall() == [(21, 1020, 1)]
    writer.close()
