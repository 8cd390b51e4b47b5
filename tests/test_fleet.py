"""leakkit.fleet and ``leakkit fleet`` over a small simulated fleet written by FleetWriter: which
workers leak, since when, closest to their limit, rates, the version that started it, and the
SQL printed; bad input says what was expected."""
from __future__ import annotations

import subprocess
import sys

import matplotlib
import pytest

matplotlib.use("Agg")

import leakkit  # noqa: E402
from leakkit import FleetWriter, InvalidArgumentError, NotARecordingError  # noqa: E402

T0 = 1_733_443_200.0
LIMIT = 512 << 20


def simulate(root, *, hours: float = 3.0, every: float = 60.0) -> dict:
    """Two hosts, four workers each; web-1 runs 1.1 (deployed an hour in: new pids), where workers
    0 and 2 leak from their start; one 1.0 worker on web-0 ended early. Returns what was planted."""
    planted = {"leaking": set(), "ended": set()}
    for host in ("web-0", "web-1"):
        writer = FleetWriter(root, host=host, service="api", every=every, slice_s=3600, flush_s=600)
        for w in range(4):
            new = host == "web-1"
            pid, start = (5000 + w, T0 + 3600) if new else (4000 + w, T0)
            leak = new and w % 2 == 0
            end = T0 + 1800 if (not new and w == 3) else T0 + hours * 3600
            if leak:
                planted["leaking"].add((host, pid))
            if end < T0 + hours * 3600:
                planted["ended"].add((host, pid))
            t = start
            while t <= end:
                age = t - start
                uss = (100 << 20) + (4096.0 * age if leak else 0.0) + (age % 120) * 10
                verdict = "warming up" if age < 600 else ("leak" if leak else "flat")
                rate = 4096.0 if leak else 0.0
                writer.add({"pid": pid, "unix_time_s": t, "started_unix_s": start - 1, "role": "worker",
                            "version": "1.1" if new else "1.0", "rss_bytes": uss + (30 << 20), "uss_bytes": uss,
                            "rate_bytes_per_s": rate, "rate_low_bytes_per_s": rate - 100, "rate_high_bytes_per_s": rate + 100,
                            "verdict": verdict, "limit_bytes": LIMIT,
                            "seconds_to_limit": (LIMIT - uss) / rate if leak and verdict == "leak" else None})
                t += every
        writer.close()
    return planted


@pytest.fixture(scope="module")
def fleet_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    return root, simulate(root)


def test_the_report_names_the_leaking_workers_since_when_and_the_version(fleet_root):
    root, planted = fleet_root
    report = leakkit.fleet(root)
    assert set(zip(report.leaking["host"], report.leaking["pid"], strict=True)) == planted["leaking"]
    row = report.leaking.iloc[0]
    assert row["leak_since_s"] == T0 + 3600 + 600  # the first leak verdict of an unbroken run
    assert row["rate_bytes_per_s"] == 4096.0 and row["rate_low_bytes_per_s"] == 3996.0
    assert row["average_bytes_per_s"] == pytest.approx(4096.0, rel=0.01)
    assert row["samples"] == 121 and row["first_s"] == T0 + 3600
    ended = report.workers[~report.workers["alive"].astype(bool)]
    assert set(zip(ended["host"], ended["pid"], strict=True)) == planted["ended"]
    assert set(report.closest["pid"]) == {p for _h, p in planted["leaking"]}  # only they have a time to the limit
    assert report.closest["seconds_to_limit"].is_monotonic_increasing
    assert report.version_onsets() == [("api", "1.1")]
    versions = report.versions.set_index("version")
    assert versions.loc["1.0", "leaking"] == 0 and versions.loc["1.1", "leaking"] == 2
    hosts = report.hosts.set_index("host")
    assert hosts.loc["web-1", "leaking"] == 2 and hosts.loc["web-0", "leaking"] == 0 and hosts.loc["web-0", "workers"] == 3
    text = str(report)
    assert "LEAKING: 2 worker(s) on 1 host(s)" in text
    assert "api 1.1 (2024-12-06 00:59 UTC): 4 worker(s), 2 leaking" in text and "<- leaks start with this version" in text
    assert "parquet_kv_metadata" in report.sql and report.sql.count(";") == len(report.tables.statements)
    assert "<pre>" in report._repr_html_()


def test_the_plots_draw_the_fastest_growing_workers(fleet_root):
    from matplotlib.figure import Figure

    root, planted = fleet_root
    report = leakkit.fleet(root)
    ax = report.plot(ax=Figure().subplots())
    labels = [line.get_label() for line in ax.get_lines()]
    assert len(labels) == 5 and all("(leak)" in label for label in labels[:2])
    top = ax.get_lines()[0].get_ydata()
    assert top[-1] - top[0] > 20  # MiB over the plotted life
    report.plot_rates(ax=Figure().subplots())
    report.plot_versions(ax=Figure().subplots())


def test_a_window_keeps_the_workers_seen_in_it(fleet_root):
    root, planted = fleet_root
    report = leakkit.fleet(root, since="1h", column="uss")
    assert not {(h, p) for h, p in zip(report.workers["host"], report.workers["pid"], strict=True)} & planted["ended"]
    assert report.tables.column == "uss" and (report.workers["memory_bytes"] < 130 << 20).all()


def test_a_fleet_with_no_leak_says_so(tmp_path):
    writer = FleetWriter(tmp_path, host="h", service="s", every=1)
    for i in range(30):
        writer.add({"pid": 9, "unix_time_s": T0 + i, "uss_bytes": 1 << 20, "verdict": "flat"})
    writer.close()
    report = leakkit.fleet(tmp_path)
    assert len(report.leaking) == 0 and "no worker leaking" in str(report)


def test_the_command_prints_the_report_the_sql_and_exits_1_on_a_leak(fleet_root, tmp_path):
    root, _planted = fleet_root
    plot = tmp_path / "fleet.png"
    done = subprocess.run([sys.executable, "-m", "leakkit", "fleet", str(root), "--sql", "--plot", str(plot)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "LEAKING: 2 worker(s)" in done.stdout and "CREATE OR REPLACE TEMP TABLE workers AS" in done.stdout
    assert plot.stat().st_size > 1000


@pytest.mark.parametrize("args, message", [
    (["/nonexistent/fleet"], "path: expected a folder of fleet recordings"),
    (["{empty}"], "with none"),
    (["{root}", "--since", "yesterday"], "since: expected a positive duration"),
])
def test_bad_input_exits_2_with_what_was_expected(fleet_root, tmp_path, args, message, capsys):
    from leakkit.frontends.cli import main

    root, _planted = fleet_root
    assert main(["fleet", *[a.format(root=root, empty=tmp_path) for a in args]]) == 2
    assert message in capsys.readouterr().err


def test_bad_options_and_foreign_files_are_refused(fleet_root, tmp_path):
    root, _planted = fleet_root
    with pytest.raises(InvalidArgumentError, match="column: expected one of rss, pss, uss"):
        leakkit.fleet(root, column="vms")
    with pytest.raises(InvalidArgumentError, match="top: expected an int >= 1"):
        leakkit.fleet(root, top=0)
    folder = tmp_path / "host=h" / "service=s" / "pid=1"
    folder.mkdir(parents=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1]}), folder / "monitor-1-20241206T000000Z-0000.parquet")
    with pytest.raises(NotARecordingError, match="leakkit.summary"):
        leakkit.fleet(tmp_path)
