"""Exit codes never lie (issue 24, class 4): one table in --help, docs/cli.md and the README; code
under investigation that exits or raises GeneratorExit is an input error (2), never "a leak found"
(1); malformed recordings are input errors (2), not leakkit's failure (3); a closed pipe ends
quietly (141)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import leakkit
from leakkit.frontends.cli import EXIT_CODES, build_parser, main
from leakkit.recording.tables import FILE_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "MPLBACKEND": "Agg"}


def _table(path: Path) -> list[tuple[str, str]]:
    text = path.read_text()
    block = re.search(r"<!-- leakkit:exit-codes -->\n(.*?)\n<!-- /leakkit:exit-codes -->", text, re.S)
    assert block, f"{path.name} has no exit-code table"
    rows = [line.strip("|").split("|") for line in block.group(1).splitlines()[2:]]
    return [(code.strip(), meaning.strip()) for code, meaning in rows]


def test_one_exit_code_table_in_help_docs_and_readme():
    assert _table(ROOT / "README.md") == list(EXIT_CODES)
    assert _table(ROOT / "docs" / "cli.md") == list(EXIT_CODES)
    shown = " ".join(build_parser().format_help().split())
    for code, meaning in EXIT_CODES:
        assert f"{code} {meaning}" in shown, code


_WORKLOADS = '''
import sys
def exits():
    sys.exit(1)
def exits_0():
    sys.exit(0)
def generator_exit():
    raise GeneratorExit("from the workload")
def fine():
    return [0] * 3
'''


@pytest.mark.parametrize("argv, fragment", [
    (["bisect", "ec_work:exits", "-n", "12", "-q"], "called sys.exit(1)"),
    (["bisect", "ec_work:exits_0", "-n", "12", "-q"], "called sys.exit(0)"),
    (["bisect", "ec_work:generator_exit", "-n", "12", "-q"], "raised GeneratorExit: from the workload"),
    (["bisect", "ec_work:fine", "--targets", "ec_exits_at_import", "-n", "12", "-q"], "called sys.exit(1)"),
    (["bisect", "ec_exits_at_import:anything", "-n", "12", "-q"], "called sys.exit(1)"),
])
def test_code_under_investigation_that_exits_is_an_input_error_never_a_leak(tmp_path, monkeypatch, capsys, argv,
                                                                            fragment):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    (tmp_path / "ec_work.py").write_text(_WORKLOADS)
    (tmp_path / "ec_exits_at_import.py").write_text("import sys\nsys.exit(1)\n")
    try:
        code = main(argv)
    finally:
        for name in ("ec_work", "ec_exits_at_import"):
            sys.modules.pop(name, None)
    err = capsys.readouterr().err
    assert code == 2, err
    assert fragment in err and "Traceback" not in err


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    root = tmp_path_factory.mktemp("malformed")
    header = ",".join(FILE_COLUMNS)

    def row(**cells) -> str:
        return ",".join(str(cells.get(c, "")) for c in FILE_COLUMNS)

    call = {"table": "calls", "call": 0, "function": "f", "thread": "Main", "start": 0, "duration_s": 1, "depth": 0}
    files = {
        "call 1e20": f"{header}\n{row(**{**call, 'call': '1e20'})}\n",
        "duplicate columns": f"{header},call\n{row(**call)},1\n",
        "negative allocated_bytes": f"{header}\n{row(table='checkpoints', call=0, blocks=1, allocated_bytes=-1)}\n",
        "a header twice": f"{header}\n{header}\n",
        "depth -1": f"{header}\n{row(**{**call, 'depth': -1})}\n",
        "not UTF-8": "table,call,function\n\xff\xfe",
        "mprof negative": "MEM 1 1700000000\nMEM -1 1700000001\n",
        "mprof text": "MEM lots 1700000000\n",
        "not parquet.parquet": "this is not parquet",
    }
    out = {}
    for name, text in files.items():
        path = root / (name.replace(" ", "_") + (".dat" if name.startswith("mprof") else "" if "." in name else ".csv"))
        path.write_text(text, errors="surrogateescape")
        out[name] = str(path)
    out["a FIFO"] = str(root / "fifo.csv")
    os.mkfifo(out["a FIFO"])
    out["/dev/zero"] = "/dev/zero"
    return out


MALFORMED = ["call 1e20", "duplicate columns", "negative allocated_bytes", "a header twice", "depth -1", "not UTF-8",
             "mprof negative", "mprof text", "not parquet.parquet", "a FIFO", "/dev/zero"]


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_recordings_are_input_errors_exit_2(recordings, name, capsys):
    assert main(["report", recordings[name], "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "expected" in err and "internal error" not in err


def _fleet(root: Path) -> str:
    """A fleet of one leaking worker whose statuses have uss but no rss (the report's default column)."""
    with leakkit.FleetWriter(root, host="h", service="s", every=1) as writer:
        for i in range(30):
            writer.add({"pid": 9, "unix_time_s": 1.7e9 + i, "uss_bytes": (i + 1) << 20, "verdict": "leak"})
    return str(root)


@pytest.mark.parametrize("argv", [["report", "REC", "--no-plot"], ["--help"], ["report", "--help"], ["--version"],
                                  ["fleet", "FLEET"], ["fleet", "FLEET", "--sql"], ["attach", "--help"]])
def test_a_closed_pipe_ends_quietly(tmp_path, argv):
    if "FLEET" in argv:
        pytest.importorskip("duckdb")
        _fleet(tmp_path / "fleet")
    traced = leakkit.trace(lambda: None, summaries=False)
    for _ in range(30):
        traced()
    traced.save(tmp_path / "rec.csv")
    argv = [str(tmp_path / "rec.csv") if a == "REC" else str(tmp_path / "fleet") if a == "FLEET" else a for a in argv]
    read, write = os.pipe()
    os.close(read)  # the reader (head) is gone before leakkit writes a line
    try:
        done = subprocess.run([sys.executable, "-m", "leakkit", *argv], stdout=write, stderr=subprocess.PIPE,
                              env=ENV, timeout=120)
    finally:
        os.close(write)
    # argparse swallows a failed write of --help or --version: those end with 0, quietly too
    assert done.returncode == 141 or (done.returncode == 0 and argv[0] not in ("report", "fleet") or "--help" in argv), \
        done.stderr
    assert done.stderr == b""


def test_a_broken_pipe_of_leakkits_own_is_its_failure_not_a_closed_output(monkeypatch, capsys, tmp_path):
    from leakkit.frontends.commands import report

    def broken(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe (a pipe of leakkit's own)")

    monkeypatch.setattr(report, "report_for", broken)
    assert main(["report", str(tmp_path / "x.csv"), "--no-plot"]) == 3
    assert "internal error: BrokenPipeError" in capsys.readouterr().err


def test_a_fleet_without_the_reports_column_is_a_report_not_leakkits_failure(tmp_path, capsys):
    """A fleet whose statuses lack rss (the default column) printed "internal error: boolean value of NA"."""
    pytest.importorskip("duckdb")
    code = main(["fleet", _fleet(tmp_path)])
    out, err = capsys.readouterr()
    assert code in (0, 1) and "internal error" not in err, err
    assert "n/a" in out
