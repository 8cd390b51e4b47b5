"""mprof .dat files: read theirs, write ours, and round-trip through memory_profiler's own reader."""
from __future__ import annotations

import sys

import matplotlib
import mprof
import pandas as pd
import pytest

from leakkit._errors import NotARecordingError
from leakkit.recording.mprof import read_mprofile, write_mprofile
from leakkit.recording.timeline import load
from leakkit.recording.watch import watch

MIB = 1024 * 1024

RECORDED_BY_MPROF = """CMDLINE python worker.py
MEM 10.000000 1700000000.0000
FUNC worker.handle 10.0000 1700000000.0500 11.5000 1700000000.1500 1
MEM 12.500000 1700000000.1000
CHLD 0 3.250000 1700000000.1000
MEM 15.000000 1700000000.2000
"""


def test_an_mprof_recording_loads_into_the_watch_shape(tmp_path):
    path = tmp_path / "mprofile_1.dat"
    path.write_text(RECORDED_BY_MPROF)
    frame = load(path)
    assert frame["rss"].tolist() == [10 * MIB, 12.5 * MIB, 15 * MIB]
    assert frame["t"].round(4).tolist() == [0.0, 0.1, 0.2]
    assert frame["uss"].isna().all()
    assert frame.attrs["cmdline"] == "python worker.py"
    functions = frame.attrs["functions"]
    assert functions.loc[0, "function"] == "worker.handle"
    assert functions.loc[0, "end_bytes"] == 11.5 * MIB and functions.loc[0, "level"] == 1
    assert frame.attrs["child_samples"]["rss"].tolist() == [3.25 * MIB]


def test_a_leakkit_watch_written_as_dat_reads_back_in_memory_profilers_reader(tmp_path):
    path = tmp_path / "watch.dat"
    frame = watch([sys.executable, "-c", "import time; x = b'x' * (8 << 20); time.sleep(0.4)"],
                  interval=0.05, out=path, progress=False)
    theirs = mprof.read_mprofile_file(str(path))
    assert len(theirs["mem_usage"]) == len(frame)
    assert theirs["mem_usage"] == pytest.approx((frame["rss"] / MIB).tolist(), abs=1e-5)
    assert theirs["timestamp"] == pytest.approx(frame["unix_time_s"].tolist(), abs=1e-3)
    assert theirs["cmd_line"].startswith(sys.executable)
    ours = read_mprofile(path)
    assert ours["rss"].tolist() == pytest.approx(frame["rss"].tolist(), abs=1)


def test_write_mprofile_is_drawn_by_mprof_plot(tmp_path):
    matplotlib.use("Agg")
    frame = pd.DataFrame({"t": [0.0, 1.0, 2.0], "unix_time_s": [1e9, 1e9 + 1, 1e9 + 2],
                          "rss": [10 * MIB, 11 * MIB, 13 * MIB], "uss": [8 * MIB, 9 * MIB, 11 * MIB]})
    path = write_mprofile(frame, tmp_path / "ours.dat", column="uss", cmdline="python x.py")
    import pylab

    pylab.figure()
    mprof.plot_file(path)
    lines = pylab.gca().get_lines()
    assert list(lines[0].get_ydata()) == pytest.approx([8, 9, 11])
    pylab.close("all")
    assert mprof.read_mprofile_file(path)["cmd_line"].strip() == "python x.py"


@pytest.mark.parametrize(
    ("text", "line"),
    [("MEM 1.0 2.0\nMEM abc 3.0\n", 2), ("CMDLINE x\nMEM 1.0\n", 2), ("MEM 1 2\nhello world\n", 2),
     ("FUNC f 1 2 3\n", 1), ("MEM 1 2\nMEM nan 3\n", 2)],
)
def test_a_malformed_dat_names_the_line(tmp_path, text, line):
    path = tmp_path / "bad.dat"
    path.write_text(text)
    with pytest.raises(NotARecordingError, match=rf"bad.dat:{line}:"):
        load(path)


def test_a_dat_without_samples_is_not_a_recording(tmp_path):
    path = tmp_path / "empty.dat"
    path.write_text("CMDLINE python x.py\n")
    with pytest.raises(NotARecordingError, match="MEM"):
        read_mprofile(path)
