"""The parts of leakkit attach, in this process: the paced heap walk, the census of holders, the
session's result, the report file, the protocol's limits, the injector's layout and the .pth.

The end-to-end tests on real servers are in tests/test_attach.py.
"""
from __future__ import annotations

import gc
import glob
import json
import os
import socket
import subprocess
import sys
import sysconfig
import threading
import time

import pytest

from leakkit import NotARecordingError
from leakkit.frontends.agent import pending, pth, server
from leakkit.frontends.agent.protocol import MAX_LINE, Lines
from leakkit.probes.heap import heap_summary
from leakkit.probes.target import read_target
from leakkit.recording import attach_session
from leakkit.recording.attach_sites import Sites, census, scan
from leakkit.recording.heap_pacer import Pacer
from leakkit.recording.heap_walk import HeapWalk, type_name
from leakkit.reports.attach_report import AttachReport, load_attach

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class Planted:
    def __init__(self, i: int) -> None:
        self.i = i
        self.tag = f"planted-{i}"


def test_the_walk_counts_reachable_objects_as_heap_summary_names_and_sizes_them():
    Planted.kept = [Planted(i) for i in range(3000)]  # reachable from a module: test_attach_units.Planted.kept
    try:
        walk = HeapWalk(Pacer()).run()
        summary = walk.summary()
        walk.release()
        table = heap_summary(collect=False).set_index("type")
        name = type_name(Planted)
        assert summary[name][0] == 3000 == table.loc[name, "count"]
        assert summary[name][1] == table.loc[name, "size"]
    finally:
        del Planted.kept


def test_what_only_a_running_functions_locals_hold_is_counted_where_it_can_be_read_without_a_change():
    local = [Planted(i) for i in range(700)]  # only this frame refers to them
    walk = HeapWalk(Pacer()).run()
    counted = walk.summary().get(type_name(Planted), [0])[0]
    walk.release()
    assert counted == (0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 700)
    frame = sys._getframe()
    if sys.version_info < (3, 13):  # nothing was copied into the frame: no dict of its locals made
        assert len(local) == 700 and frame.f_code.co_name.startswith("test_")


def test_the_walk_never_counts_leakkits_own_objects_nor_garbage_cycles():
    class Cycle:
        pass

    gc.collect()
    gc.disable()
    try:
        for _ in range(500):  # garbage the collector has not freed yet
            a = Cycle()
            a.self = a
        del a
        walk = HeapWalk(Pacer()).run()
        summary = walk.summary()
        walk.release()
    finally:
        gc.enable()
        gc.collect()
    assert type_name(Cycle) not in summary
    assert not [name for name in summary if name.startswith("leakkit.")]


def test_the_walk_yields_the_gil_every_few_milliseconds_on_a_long_list_in_a_big_process():
    """CI ran this inside the whole suite (millions of objects) and saw holds of 125 and 214 ms: a full
    collection of the interpreter's own ran in the walk's thread in the middle of a hold (the walk's
    allocations were the ones that crossed the threshold, as any allocation of the process would
    have). The test builds that state itself, mid-walk, at the first pause: a heap of a million more
    containers, enough objects promoted since the last full collection for the next automatic one to
    be full, and the young generation over its threshold; the walk's next allocation collects all.
    The ballast hangs on the pacer, a leakkit object the walk does not enter, so the walk stays short."""
    Planted.kept = [Planted(i) for i in range(200_000)]
    me = threading.get_ident()
    collections: list[tuple[int, float, float]] = []  # (generation, CPU at start, CPU at stop) in this thread
    marks: list[tuple[float, float]] = []  # (CPU when a pause's check began, CPU when it returned)
    started: list[float] = []

    def timed(phase: str, info: dict) -> None:
        if threading.get_ident() == me:
            if phase == "start":
                started.append(time.thread_time())
            else:
                collections.append((info["generation"], started.pop(), time.thread_time()))

    def check() -> None:
        entered = time.thread_time()
        if not marks:  # the first pause: make the next automatic collection a full one, due now
            gc.disable()
            pacer.ballast = [[] for _ in range(1_000_000)]
            for _ in range(11):  # each counts one towards the oldest generation's threshold (10)
                gc.collect(1)    # and promotes the ballast: more than a quarter of the heap is pending
            pacer.young = [[] for _ in range(gc.get_threshold()[0] + 1)]
            gc.enable()
        marks.append((entered, time.thread_time()))

    pacer = Pacer(check=check)
    gc.callbacks.append(timed)
    try:
        cpu = time.thread_time()
        walk = HeapWalk(pacer).run()
        spent = time.thread_time() - cpu
        walk.release()
    finally:
        gc.enable()
        gc.callbacks.remove(timed)
        del Planted.kept
    pacer.ballast = pacer.young = None
    full = [(stop - start) for gen, start, stop in collections if gen == 2 and start > marks[0][1]]
    assert full, "no full collection ran during the walk: the test did not build the CI condition"
    # leakkit's own work: no stretch between two pauses over 50 ms of CPU, the interpreter's collections apart
    assert pacer.longest_cpu_s < 0.05, (pacer.longest_cpu_s, full)
    # the same measured here, independently of the pacer's bookkeeping: each stretch between two
    # pauses, less the full collections (leakkit never asks for one) that ran inside it
    holds = []
    for (_, left), (right, _) in zip(marks, marks[1:], strict=False):
        inside = sum(stop - start for gen, start, stop in collections if gen == 2 and left <= start and stop <= right)
        holds.append(right - left - inside)
    assert max(holds) < 0.05, max(holds)
    # reported as what it was: the interpreter's collection, timed apart from leakkit's work
    assert pacer.collections >= 1 and pacer.longest_collection_generation == 2
    assert pacer.longest_collection_s >= 0.9 * max(full), (pacer.longest_collection_s, full)
    # thousands of pauses: the work is cut in pieces whatever one hold measured on a busy machine
    assert pacer.pauses >= (spent - sum(full)) / 0.05, (pacer.pauses, spent)


def test_a_dict_and_a_set_of_half_a_million_entries_are_read_in_slices():
    """One ``gc.get_referents`` of a dict or a set hands out all its entries in one C call: 55 ms for
    half a million each, 113 ms for a million (a cache that leaks is such a dict)."""
    Planted.cache = {i: Planted(i) for i in range(500_000)}
    Planted.names = {f"n{i}" for i in range(500_000)}
    # old, as a long-lived cache is: one young collection over containers made a moment ago (47 ms
    # here, whoever asks for it) is not what this test measures
    gc.collect()
    try:
        pacer = Pacer()
        walk = HeapWalk(pacer).run()
        summary = walk.summary()
        walk.release()
    finally:
        del Planted.cache, Planted.names
    assert summary[type_name(Planted)][0] >= 500_000  # every entry was read
    assert summary["str"][0] >= 500_000
    # leakkit's own stretches stay near its 2 ms step: ten of them is far below one such call
    assert pacer.longest_cpu_s < 10 * pacer.hold_s, (pacer.longest_cpu_s, pacer.longest_what, pacer.collections,
                                                    pacer.longest_collection_s)


def test_a_grown_module_level_holder_is_found_by_name_with_the_site_of_its_new_entries():
    import tracemalloc

    module = type(sys)("planted_registry")
    module.REGISTRY = {f"old-{i}": i for i in range(20)}
    sys.modules["planted_registry"] = module
    started = not tracemalloc.is_tracing()
    try:
        pacer = Pacer()
        table = census(pacer)
        if started:
            tracemalloc.start(5)
        for i in range(50):
            module.REGISTRY[f"new-{i}"] = bytearray(100 + i)  # the site
        sites = Sites(__import__("leakkit.retention.holders", fromlist=["x"]).raw_traceback)
        scan(table, sites, pacer, name_of=type_name)
        holders = {h["path"]: h for h in sites.holders}
        assert holders["planted_registry.REGISTRY"]["len"] == 70
        assert holders["planted_registry.REGISTRY"]["entries"]["bytearray"] == 50
        where = sites.of("bytearray")
        assert where["site"].endswith(f"test_attach_units.py:{_line_of('# the site')}")
        sites.release()
    finally:
        if started:
            tracemalloc.stop()
        del sys.modules["planted_registry"]


def _line_of(marker: str) -> int:
    with open(__file__) as handle:
        return next(i for i, line in enumerate(handle, 1) if marker in line and "_line_of" not in line)


def test_a_session_reports_what_grew_and_leaves_no_tracing_and_no_reference():
    import tracemalloc
    import weakref

    Planted.registry = kept = []
    grow = threading.Event()

    def leak() -> None:
        while not grow.wait(0.001):
            Planted.registry.append(Planted(len(kept)))  # the planted leak

    thread = threading.Thread(target=leak, daemon=True)
    thread.start()
    out = {}
    worker = threading.Thread(target=lambda: out.update(attach_session.run(
        attach_session.Options(duration=1.0), progress=lambda m: None, wait=time.sleep, check=lambda: None)),
        name="leakkit-agent-session-test")
    worker.start()
    worker.join(300)
    grow.set()
    thread.join(10)
    assert not tracemalloc.is_tracing()
    grown = {row["type"]: row for row in out["types"]}
    row = grown[type_name(Planted)]
    assert row["count_delta"] > 0 and row["new"] > 0
    assert row["site"].endswith(f"test_attach_units.py:{_line_of('# the planted leak')}")
    paths = [p["path"] for p in out["paths"] if p["type"] == type_name(Planted)]
    assert paths and all(p.startswith("test_attach_units.Planted.registry[") for p in paths), paths
    assert out["memory"]["tracemalloc_peak"] > 0 and out["gil"]["pauses"] > 0
    made = row["new_size"] if "new_size" in row else row["size_delta"]
    assert out["traced_bytes"] >= 0.5 * made  # what the window allocated and kept: the leak's at least
    probe = weakref.ref(kept[-1])
    kept.clear()
    del Planted.registry
    gc.collect()
    assert probe() is None  # the session kept no reference to what it sampled


def test_the_report_file_loads_back_with_the_same_text_and_tables(tmp_path):
    result = {"pid": 42, "python": "3.11.7", "argv": ["app.py"], "window_s": 3.0, "ended_by": "duration",
              "walks": [{"objects": 10}, {"objects": 12}], "rss_before": 1 << 20, "rss_after": 2 << 20,
              "types": [{"type": "app.Cart", "count": 5, "size": 500, "count_delta": 2, "size_delta": 200, "new": 2,
                         "new_size": 200, "site": "/srv/app.py:12", "site_share": 1.0, "sampled": 2,
                         "traceback": [["/srv/app.py", 12]]}],
              "holders": [{"path": "app.CARTS", "type": "dict", "old_len": 8, "len": 10, "entries": {"app.Cart": 2}}],
              "paths": [{"type": "app.Cart", "path": "app.CARTS['c1']"}],
              "tracing": {"frames": 10, "started_by_leakkit": True, "slowdown": 4.0},
              "memory": {"tracemalloc_peak": 1000, "walk_peak": 2000}, "gil": {"longest_hold_s": 0.003,
              "longest_hold_in": "the heap walk", "pauses": 10, "tracemalloc_stop_s": 0.001}, "notes": [],
              "agent": {"mode": "once"}}
    report = AttachReport(result, way_in="injected", target={"pid": 42})
    path = report.save(tmp_path / "r.json")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    again = load_attach(path)
    assert str(again) == str(report)
    assert list(again.types["type"]) == ["app.Cart"] and list(again.paths["path"]) == ["app.CARTS['c1']"]
    assert "app.CARTS: dict 8 -> 10 entries (+2)" in str(again)
    assert "<table" in again._repr_html_()
    idle = AttachReport({**result, "types": [], "paths": [], "holders": [], "traced_bytes": 3072},
                        way_in="injected", target={"pid": 42})
    assert "allocated in it and still alive: 3.0 KiB" in str(idle)
    assert "(none: Python allocations made in the window and still alive came to 3.0 KiB; the leaking code " \
           "may not have run meanwhile" in str(idle)
    (tmp_path / "x.json").write_text(json.dumps({"kind": "something else"}))
    with pytest.raises(NotARecordingError, match="expected a leakkit attach report"):
        load_attach(tmp_path / "x.json")


def test_a_message_over_the_line_limit_is_refused_not_buffered():
    a, b = socket.socketpair()
    try:
        chunk = b"x" * (1 << 20)

        def send() -> None:
            try:
                for _ in range(MAX_LINE // len(chunk) + 2):
                    a.sendall(chunk)
            except OSError:  # the reader gave up and closed: as it should
                pass

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        with pytest.raises(ValueError, match="over"):
            Lines(b).read()
    finally:
        a.close()
        b.close()


def test_the_agent_refuses_a_peer_of_another_user(monkeypatch):
    monkeypatch.setattr("leakkit.frontends.agent.server.peer_uid", lambda conn: (1, os.getuid() + 12345))
    path = server.start()
    assert path is not None and oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert oct(os.stat(os.path.dirname(path)).st_mode & 0o777) == "0o700"
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            sock.connect(path)
            answer = Lines(sock).read()
        assert answer["ok"] is False and answer["error"] == "refused"
    finally:
        server.stop()
    assert not os.path.exists(path)


def test_the_pending_call_layout_is_this_interpreters():
    """The injector's table agrees with this very process's memory (the compatibility pass runs it on every version)."""
    me = read_target(os.getpid())
    plan = pending.locate(os.getpid(), sys.version_info[:2], me.libpython, me.exe)
    assert plan.interp and plan.run_string and plan.slack[1] >= 256


def test_a_layout_that_does_not_match_the_process_is_refused_before_any_write(monkeypatch):
    me = read_target(os.getpid())
    layout = pending.LAYOUTS[sys.version_info[:2]]
    wrong = type(layout)(**{**layout.__dict__, "interp_runtime": layout.interp_runtime + 8})
    monkeypatch.setitem(pending.LAYOUTS, sys.version_info[:2], wrong)
    with pytest.raises(pending.Refused, match="not laid out as leakkit expects"):
        pending.locate(os.getpid(), sys.version_info[:2], me.libpython, me.exe)


def _pyenv_versions() -> list[str]:
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip() if _has("pyenv") else ""
    return sorted(glob.glob(os.path.join(root, "versions", "3.1[0-3]*"))) if root else []


def _has(program: str) -> bool:
    from shutil import which

    return which(program) is not None


@pytest.mark.skipif(not _has("gcc"), reason="no C compiler to read CPython's internal headers")
def test_the_layout_table_is_what_cpythons_own_headers_say(tmp_path):
    prefixes = {sysconfig.get_config_var("prefix"), *_pyenv_versions()}
    checked = 0
    for prefix in sorted(p for p in prefixes if p):
        for include in glob.glob(os.path.join(prefix, "include", "python3.1[0-3]")):
            if not os.path.isdir(os.path.join(include, "internal")):
                continue
            version = tuple(int(x) for x in os.path.basename(include)[6:].split("."))
            binary = tmp_path / f"offsets-{checked}"
            subprocess.run(["gcc", "-w", "-I", include, "-I", os.path.join(include, "internal"),
                            os.path.join(HERE, "attach", "pending_offsets.c"), "-o", str(binary)], check=True)
            printed = dict(line.split() for line in subprocess.run([str(binary)], capture_output=True, text=True,
                                                                   check=True).stdout.splitlines())
            layout = pending.LAYOUTS[version]
            for name, value in printed.items():
                assert str(getattr(layout, name)) == value, (include, name, value, getattr(layout, name))
            checked += 1
    if not checked:
        pytest.skip("no CPython 3.10-3.13 internal headers on this machine")


def test_wheels_carry_the_pth_line_that_starts_the_agent_only_when_asked(tmp_path):
    with open(os.path.join(ROOT, "leakkit-agent.pth")) as handle:
        assert handle.read() == pth.LINE
    # setup.py's build_py, as a wheel build runs it (without compiling the C parts)
    setuptools = pytest.importorskip("setuptools", reason="a venv of 3.12+ has no setuptools unless installed")
    from setuptools.dist import Distribution

    source = open(os.path.join(ROOT, "setup.py")).read()
    found: dict = {}
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        real_setup, setuptools.setup = setuptools.setup, lambda **kw: found.update(kw)
        try:
            exec(compile(source, "setup.py", "exec"), {"__name__": "setup"})
        finally:
            setuptools.setup = real_setup
        command = found["cmdclass"]["build_py"](Distribution({"packages": []}))
        command.build_lib = str(tmp_path / "lib")
        command.ensure_finalized()
        command.run()
        assert os.path.join(command.build_lib, "leakkit-agent.pth") in command.get_outputs()
    finally:
        os.chdir(cwd)
    assert (tmp_path / "lib" / "leakkit-agent.pth").read_text() == pth.LINE
    site = tmp_path / "site"
    site.mkdir()
    pth.install(str(site))
    code = "import sys, threading; print(sorted(m for m in sys.modules if m.startswith('leakkit')), [t.name for t in threading.enumerate()])"
    for value, agent in (("", False), ("0", False), ("1", True)):
        env = {**os.environ, "PYTHONPATH": f"{ROOT}", "LEAKKIT_AGENT": value}
        out = subprocess.run([sys.executable, "-c", f"import site; site.addsitedir({str(site)!r}); {code}"],
                             capture_output=True, text=True, env=env, timeout=60).stdout
        assert ("leakkit-agent" in out) is agent, (value, out)
        assert ("leakkit" in out) is agent, (value, out)


def test_a_library_replaced_on_disk_since_the_process_loaded_it_is_refused(monkeypatch):
    me = read_target(os.getpid())
    real = pending.maps
    library = me.libpython or me.exe
    monkeypatch.setattr(pending, "maps", lambda pid: [
        m if m.path != library else type(m)(m.start, m.end, m.perms, m.offset, m.inode + 1, m.path) for m in real(pid)])
    with pytest.raises(pending.Refused, match="not the file the process loaded"):
        pending.locate(os.getpid(), sys.version_info[:2], me.libpython, me.exe)
