"""The field service of issue 20 (tests/growers/field_service.py): a Flask app driven through its
test client, with a leak on its internal sync path beside a hand-bounded DNS cache and two
``lru_cache`` s that fill, and reference cycles per request.

First the ground truth, without leakkit: the contexts really pile up (one per call, ~4 KiB), the
DNS cache really stops at 512 and evicts its oldest hosts, the ``lru_cache`` s stay within their
sizes, and the fixed service stays flat once its caches are full.

Then leakkit, ten runs in fresh interpreters (two at a time; ``FIELD_SERVICE_SEED`` varies the
requests): at bisect's defaults (60 calls) the leak's culprit and root are named every time with
the filling caches reported beside it, and the fixed service is never called a leak; the same for
what ``%leakcheck -n 50`` runs. The CLI's exit code, the magic itself in an IPython shell and the
pytest marker and fixture say the same. About 80 s of wall time on two idle cores.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("flask")

HERE = os.path.dirname(os.path.abspath(__file__))
GROWERS = os.path.join(HERE, "growers")
RUNS = 10
LIMIT_AS = 4 << 30  # address space of each child: a runaway run stops there


def _child_env(seed: int) -> dict[str, str]:
    return dict(os.environ, MPLBACKEND="Agg", FIELD_SERVICE_SEED=str(seed), PYTHONHASHSEED=str(seed))


def _limit() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))


def _run(args: list[str], seed: int, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=_child_env(seed),
                          timeout=timeout, preexec_fn=_limit, cwd=GROWERS)


TRUTH = r"""
import gc, json, sys, tracemalloc
import field_service as fs

def kept():
    gc.collect()
    return tracemalloc.get_traced_memory()[0]

out = {}
for _ in range(3):
    fs.workload()
tracemalloc.start()
before, n0 = kept(), len(fs.CONTEXTS)
for _ in range(60):
    fs.workload()
after = kept()
out["contexts_added"] = len(fs.CONTEXTS) - n0
fs.CONTEXTS.clear()
out["context_bytes_per_call"] = (after - kept()) / 60
out["grew_per_call"] = (after - before) / 60
tracemalloc.stop()

fs.reset()
tracemalloc.start()  # from the start: what the caches evict later was traced, so its release counts
first = None
for i in range(600):
    fs.workload_fixed()
    if first is None:
        first = next(iter(fs.DNS_CACHE))
out["dns_len"] = len(fs.DNS_CACHE)
out["dns_first_evicted"] = first not in fs.DNS_CACHE
out["lru"] = [fs.parse_user_agent.cache_info().currsize, fs.tenant_settings.cache_info().currsize]
before = kept()
for _ in range(100):
    fs.workload_fixed()
out["fixed_per_call"] = (kept() - before) / 100
out["contexts_fixed"] = len(fs.CONTEXTS)
out["leakkit_imported"] = any(name.split(".")[0] == "leakkit" for name in sys.modules)
print("TRUTH-JSON " + json.dumps(out))
"""


def test_ground_truth_without_leakkit() -> None:
    proc = _run(["-c", TRUTH], seed=0)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("TRUTH-JSON ")]
    assert lines, proc.stderr[-3000:]
    got = json.loads(lines[-1][len("TRUTH-JSON "):])
    assert not got["leakkit_imported"]
    # the leak: one context per call, ~4 KiB each, and what the contexts hold is most of what grows
    assert got["contexts_added"] == 60
    assert 3000 <= got["context_bytes_per_call"] <= 6000, got
    assert got["context_bytes_per_call"] >= 0.35 * got["grew_per_call"], got
    # the hand-bounded cache stops at 512 and evicts its oldest host; the lru_caches stay in bounds
    assert got["dns_len"] == 512 and got["dns_first_evicted"], got
    assert got["lru"][0] <= 128 and got["lru"][1] <= 256, got
    # fixed, with every cache full: flat (the leak kept ~4 KiB a call)
    assert got["contexts_fixed"] == 0
    assert abs(got["fixed_per_call"]) < 200, got


def _runs() -> list[dict]:
    def one(seed: int) -> list[dict]:
        proc = _run(["field_runs.py"], seed=seed)
        found = [json.loads(line[len("RUN-JSON "):]) for line in proc.stdout.splitlines()
                 if line.startswith("RUN-JSON ")]
        assert len(found) == 4, proc.stderr[-3000:]
        return [dict(d, seed=seed) for d in found]

    with ThreadPoolExecutor(2) as pool:
        return [d for found in pool.map(one, range(1, RUNS + 1)) for d in found]


@pytest.fixture(scope="module")
def runs() -> list[dict]:
    return _runs()


def _grower(run: dict, holder: str) -> list | None:
    return next((g for g in run["growers"] if g[0] == holder), None)


def _detail(run: dict) -> str:
    return f"seed {run['seed']}: {run['kind']} {run['variant']}\n{run['text']}"


def test_bisect_names_the_leak_every_time_with_the_caches_beside_it(runs: list[dict]) -> None:
    leaks = [r for r in runs if r["kind"] == "bisect" and r["variant"] == "leak"]
    assert len(leaks) == RUNS
    for run in leaks:
        assert run["verdict"] == "leak", _detail(run)
        assert run["culprit"] == "field_service.open_context", _detail(run)
        assert run["retention"][0].startswith("field_service.CONTEXTS["), _detail(run)
        assert _grower(run, "field_service.CONTEXTS")[1] == "leak", _detail(run)
        dns = _grower(run, "field_service.DNS_CACHE")
        assert dns is not None and dns[1:] == ["filling", "code"], _detail(run)
        lru = [g for g in run["growers"] if "(lru_cache table)" in g[0] and g[0].startswith("field_service.")]
        assert lru and all(g[1] in ("filling", "plateau") and g[2] == "implementation" for g in lru), _detail(run)
        assert [g[1] for g in run["growers"]].count("leak") == 1, _detail(run)  # the caches are not leaks
        text = " ".join(run["text"].split())
        assert "field_service.CONTEXTS keeps" in text and "bound of 512 enforced by field_service.resolve" in text


def test_bisect_never_calls_the_fixed_service_a_leak(runs: list[dict]) -> None:
    fixed = [r for r in runs if r["kind"] == "bisect" and r["variant"] == "fixed"]
    assert len(fixed) == RUNS
    for run in fixed:
        assert run["verdict"] in ("inconclusive", "plateau"), _detail(run)
        assert run["culprit"] is None, _detail(run)
        assert "leak" not in [g[1] for g in run["growers"]], _detail(run)
        assert _grower(run, "field_service.DNS_CACHE")[1] == "filling", _detail(run)


def test_leakcheck_loop_says_leak_beside_filling_caches_and_not_for_the_fix(runs: list[dict]) -> None:
    checks = [r for r in runs if r["kind"] == "check"]
    assert len(checks) == 2 * RUNS
    for run in checks:
        if run["variant"] == "leak":
            assert run["verdict"] == "leak", _detail(run)
            assert _grower(run, "field_service.CONTEXTS")[1] == "leak", _detail(run)
        else:
            assert run["verdict"] in ("inconclusive", "plateau"), _detail(run)
            assert "leak" not in [g[1] for g in run["growers"]], _detail(run)
        dns = _grower(run, "field_service.DNS_CACHE")
        assert dns is not None and dns[1:] == ["filling", "code"], _detail(run)


@pytest.mark.parametrize("fixed, code", [(False, 1), (True, 0)], ids=["leak", "fixed"])
def test_cli_exit_code(fixed: bool, code: int) -> None:
    env = _child_env(7)
    env["FIELD_SERVICE_FIXED"] = "1" if fixed else "0"
    proc = subprocess.run([sys.executable, "-m", "leakkit", "bisect", "field_service:workload", "--targets",
                           "field_service", "-q"], capture_output=True, text=True, env=env, timeout=600,
                          preexec_fn=_limit, cwd=GROWERS)
    assert proc.returncode == code, proc.stdout + proc.stderr[-2000:]
    text = " ".join(proc.stdout.split())
    assert "field_service.DNS_CACHE" in text and "filling" in text
    assert ("LEAK after" in text) != fixed


MAGIC = r"""
import os, sys
sys.path.insert(0, os.getcwd())
from IPython.testing.globalipapp import start_ipython
ip = start_ipython()
ip.run_line_magic("load_ext", "leakkit")
import field_service as fs
ip.user_ns["fs"] = fs
for name in ("workload", "workload_fixed"):
    fs.reset()
    report = ip.run_line_magic("leakcheck", f"-q -o -n 50 fs.{name}()")
    print("MAGIC", name, report.verdict, [g for g in report.growers["holder"]][:3])
"""


def test_leakcheck_magic_in_ipython() -> None:
    pytest.importorskip("IPython")
    proc = _run(["-c", MAGIC], seed=11)
    lines = [line.split(" ", 3) for line in proc.stdout.splitlines() if line.startswith("MAGIC ")]
    assert len(lines) == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert lines[0][2] == "leak" and "field_service.CONTEXTS" in lines[0][3], lines
    assert lines[1][2] in ("inconclusive", "plateau"), lines


PLUGIN = textwrap.dedent("""
    import pytest
    import field_service as fs

    @pytest.mark.leakcheck(calls=60, targets=[fs])
    def test_marker_leak():
        fs.workload()

    def test_fixture_fixed(leakcheck):
        fs.reset()
        report = leakcheck(fs.workload_fixed, calls=50)
        assert report.verdict != "leak"
""")


def test_pytest_marker_fails_with_the_leak_and_the_fixture_passes_the_fix(tmp_path) -> None:
    (tmp_path / "test_field.py").write_text(PLUGIN)
    env = _child_env(13)
    env["PYTHONPATH"] = os.pathsep.join([GROWERS, env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W",
                           "ignore::pytest.PytestUnraisableExceptionWarning", str(tmp_path / "test_field.py")],
                          capture_output=True, text=True, env=env, timeout=600, preexec_fn=_limit, cwd=tmp_path)
    out = " ".join(proc.stdout.split())
    assert "1 failed, 1 passed" in out, proc.stdout[-4000:]
    assert "field_service.CONTEXTS" in out and "culprit: field_service.open_context" in out, proc.stdout[-4000:]
    assert "field_service.DNS_CACHE" in out and "filling" in out, proc.stdout[-4000:]
