"""The IPython magics in a real IPython shell: %leakcheck / %%leakcheck / %leaktrace, errors as UsageError."""
from __future__ import annotations

import sys
import textwrap

import pytest

pytest.importorskip("IPython")

from IPython.core.error import UsageError  # noqa: E402
from IPython.testing.globalipapp import start_ipython  # noqa: E402
from IPython.utils.capture import capture_output  # noqa: E402

import leakkit  # noqa: E402

SETUP = """
HISTORY = []
def leak():
    HISTORY.append(bytearray(64))
def clean():
    return [bytearray(64) for _ in range(3)]
"""


@pytest.fixture(scope="module")
def ip():
    from IPython.testing import globalipapp

    shell = start_ipython() or globalipapp.get_ipython()  # one shell per process: another test file may have started it
    shell.run_line_magic("load_ext", "leakkit")
    shell.run_cell(SETUP)
    return shell


def test_load_ext_registers_line_and_cell_magics(ip):
    for name in ("leakcheck", "leaktrace"):
        assert ip.find_line_magic(name) is not None
        assert ip.find_cell_magic(name) is not None
    assert "--calls" in ip.find_line_magic("leakcheck").__doc__  # `%leakcheck?` shows the options


def test_function_api_and_magic_agree_on_a_leak(ip):
    leak = ip.user_ns["leak"]
    traced = leakkit.trace(leak)
    for _ in range(2):
        leak()
    for _ in range(30):
        traced()
    by_api = traced.report()
    traced.stop()

    with capture_output() as captured:
        by_magic = ip.run_line_magic("leakcheck", "-q -o -n 30 leak()")

    assert by_api.verdict == by_magic.verdict == "leak"
    assert by_magic.calls == 30
    assert by_magic.blocks_per_call == pytest.approx(by_api.blocks_per_call, abs=0.5)
    [shown] = captured.outputs  # the report was displayed (as text in a terminal shell)
    assert "LEAK" in shown.data["text/plain"]


def test_cell_form_runs_the_cell_and_displays_the_report_as_html_in_a_notebook(ip):
    html = ip.display_formatter.formatters["text/html"]
    enabled = html.enabled
    html.enabled = True  # as in a notebook kernel
    try:
        with capture_output() as captured:
            returned = ip.run_cell_magic("leakcheck", "-q -n 20", "items = clean()\ncount = len(items)\n")
    finally:
        html.enabled = enabled
    assert returned is None  # without -o the report is shown, not returned
    assert ip.user_ns["count"] == 3  # the cell ran in the user's namespace
    [shown] = captured.outputs
    assert shown.data["text/plain"].startswith("leakkit: cell: CLEAN")
    assert "<b>leakkit</b>" in shown.data["text/html"] and "<img" in shown.data["text/html"]  # with its plot


def test_leaktrace_names_the_culprit_and_what_keeps_it(ip, tmp_path, monkeypatch):
    (tmp_path / "magic_worker.py").write_text(textwrap.dedent("""
        HISTORY = []
        def record(n):
            HISTORY.append({"n": n, "body": bytearray(64)})
        def handle():
            record(len(HISTORY))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    ip.run_cell("import magic_worker")
    try:
        with capture_output() as captured:
            report = ip.run_line_magic("leaktrace", "-q -o --targets magic_worker -n 20 magic_worker.handle()")
        assert report.verdict == "leak"
        assert report.culprit == "magic_worker.record"
        assert report.retention and report.retention[0].startswith("magic_worker.HISTORY")
        assert "culprit: magic_worker.record" in captured.outputs[0].data["text/plain"]
    finally:
        ip.run_cell("del magic_worker")
        sys.modules.pop("magic_worker", None)


@pytest.mark.parametrize("line, message, usage", [
    ("-n lots leak()", "invalid int value", True),
    ("--bogus leak()", "unrecognized arguments: --bogus", True),
    ("-n 30", "expected code to run", True),
    ("-n 3 leak()", "expected an int >= 12", False),  # a leakkit error, also a UsageError
    ("leak(", "syntax error", False),
])
def test_mistakes_raise_usage_error(ip, line, message, usage):
    with pytest.raises(UsageError, match=message) as error:
        ip.run_line_magic("leakcheck", line)
    assert str(error.value).startswith("usage: %leakcheck" if usage else "%leakcheck: ")


def test_leaktrace_needs_targets_that_exist(ip):
    with pytest.raises(UsageError, match="--targets"):
        ip.run_line_magic("leaktrace", "-n 20 leak()")
    with pytest.raises(UsageError, match="no_such_module_here"):
        ip.run_line_magic("leaktrace", "--targets no_such_module_here -n 20 leak()")


def test_cell_form_takes_no_code_on_its_first_line(ip):
    with pytest.raises(UsageError, match="options only"):
        ip.run_cell_magic("leakcheck", "-n 20 leak()", "leak()\n")


def test_mistakes_show_no_traceback_in_the_shell(ip):
    with capture_output() as captured:
        result = ip.run_cell("%leakcheck -n 3 leak()")
    assert isinstance(result.error_in_exec, UsageError)
    assert "Traceback" not in captured.stdout + captured.stderr


def test_help_prints_the_options_and_runs_nothing(ip, capsys):
    before = len(ip.user_ns["HISTORY"])
    assert ip.run_line_magic("leakcheck", "-h leak()") is None
    assert "--warmup" in capsys.readouterr().out
    assert len(ip.user_ns["HISTORY"]) == before
