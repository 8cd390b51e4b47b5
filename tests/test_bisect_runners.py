"""The same bisect script gives the same answer, in about the same time, whatever runs it: a file,
``python -`` (a pipe, as ``python - <<EOF`` is), ``python -c``, the plain REPL on a terminal,
IPython, a notebook cell and pytest.

The script is a service typed at the top level: its functions live in ``__main__`` (the REPL and
IPython compile them statement by statement: at the plain REPL every statement starts at line 1 of
``<stdin>``), a dataclass (whose methods the standard library compiles as ``<string>``), a library
call, a 150 k-dict heap the calls touch, and one leak. Every run must name the leak's function and
root as the file run does, and spend at most 1.5x its CPU time (bisect's own, read in the child:
process time around the call, the workload's calls included, less what the threads that ran
before it spent meanwhile: a kernel's heartbeat and message threads, IPython's history saver,
busier on a loaded machine, read a notebook run at 1.51x once). Beneath IPython, a kernel or pytest
there are 15-35 host frames; the traced calls run with them cut off (leakkit.probes.stack), else
tracing cost 5-9x as much per call there and these runs took 1.3-1.9x the file run's time.
The runs go two at a time (~60 s in all on two busy cores).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

SERVICE = textwrap.dedent('''\
    import json, os, sys, time, random, resource
    from dataclasses import dataclass
    import leakkit
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    @dataclass
    class Request:
        user: str
        body: dict

    HEAP = [{"id": i, "name": f"row-{i}", "tags": [i]} for i in range(150_000)]
    SESSIONS = {}
    rng = random.Random(7)

    def parse(raw):
        return json.loads(raw)

    def touch_heap():
        for _ in range(50):
            row = HEAP[rng.randrange(len(HEAP))]
            row["seen"] = row.get("seen", 0) + 1

    def open_session(req):
        SESSIONS[req.user] = {"user": req.user, "body": req.body, "buf": bytearray(2048)}

    def handle(n):
        body = parse(json.dumps({"n": n, "items": list(range(30))}))
        req = Request(f"user-{n}", body)
        touch_heap()
        open_session(req)
        return len(body)

    counter = iter(range(10**9))

    def workload():
        handle(next(counter))
''')
CALL = textwrap.dedent('''\
    def host_cpu():
        """CPU ticks of each thread but this one: a host's own (IPython's history saver, a kernel's
        heartbeat and message threads) are not the bisect's cost, however busy the machine keeps them."""
        import os, threading
        ticks = {}
        for tid in os.listdir("/proc/self/task"):
            if int(tid) != threading.get_native_id():
                try:
                    with open(f"/proc/self/task/{tid}/stat") as stat:
                        fields = stat.read().rsplit(")", 1)[1].split()
                    ticks[tid] = int(fields[11]) + int(fields[12])
                except OSError:
                    pass
        return ticks

    host0, c0 = host_cpu(), time.process_time()
    report = leakkit.bisect(workload, targets=[sys.modules[__name__]], calls=60, progress=False)
    cpu, host1 = time.process_time() - c0, host_cpu()
    cpu -= sum(host1[tid] - host0[tid] for tid in host0 if tid in host1) / os.sysconf("SC_CLK_TCK")
    print("RESULT " + json.dumps({"verdict": report.verdict, "culprit": report.culprit, "root": report.retention[0] if report.retention else None, "cpu": cpu}))
''')
SCRIPT = SERVICE + "\n" + CALL


def _result(text: str) -> dict:
    lines = [line[line.index("RESULT ") + 7:] for line in text.splitlines() if "RESULT {" in line]
    assert lines, text[-3000:]
    return json.loads(lines[-1])


def _run(args: list[str], *, cwd: str, stdin: str | None = None) -> dict:
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(args, input=stdin, capture_output=True, text=True, cwd=cwd, timeout=240, env=env)
    return _result(proc.stdout + proc.stderr)


def _file(tmp: str) -> dict:
    return _run([sys.executable, "service.py"], cwd=tmp)


def _stdin(tmp: str) -> dict:
    return _run([sys.executable, "-"], cwd=tmp, stdin=SCRIPT)


def _dash_c(tmp: str) -> dict:
    return _run([sys.executable, "-c", SCRIPT], cwd=tmp)


def _repl(tmp: str) -> dict:
    """The plain interactive interpreter on a pseudo-terminal, fed one statement at a time."""
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(sys.executable, ["-q", "-i"], cwd=tmp, encoding="utf-8", timeout=240,
                          dimensions=(40, 400), env={**os.environ, "PYTHONSTARTUP": "", "MPLBACKEND": "Agg"})
    out: list[str] = []
    try:
        child.expect_exact(">>> ")
        for block in SCRIPT.split("\n\n"):
            for line in block.strip("\n").splitlines():
                child.sendline(line)
                child.expect([r">>> ", r"\.\.\. "])
                out.append(child.before)
            child.sendline("")
            child.expect_exact(">>> ")
            out.append(child.before)
        child.sendline("exit()")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    return _result("".join(out))


def _ipython(tmp: str) -> dict:
    """IPython reading the script from a pipe: each statement is a cell of its own."""
    pytest.importorskip("IPython")
    return _run([sys.executable, "-m", "IPython", "--quick", "--no-banner", "--simple-prompt", "--colors=NoColor"],
                cwd=tmp, stdin=SCRIPT)


def _notebook(tmp: str) -> dict:
    """A notebook cell run by a kernel of this interpreter (nbclient)."""
    pytest.importorskip("nbclient")
    code = textwrap.dedent(f'''\
        import json, nbformat, sys
        from nbclient import NotebookClient
        nb = nbformat.v4.new_notebook()
        nb.cells.append(nbformat.v4.new_code_cell({SCRIPT!r}))
        NotebookClient(nb, timeout=240, kernel_name="python3").execute()
        for out in nb.cells[0].outputs:
            print(out.get("text", ""))
    ''')
    return _run([sys.executable, "-c", code], cwd=tmp)


def _pytest(tmp: str) -> dict:
    body = SERVICE + "\n\ndef test_service():\n" + textwrap.indent(CALL, "    ")
    with open(os.path.join(tmp, "test_service.py"), "w") as f:
        f.write(body)
    return _run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-p", "no:leakkit",
                 "test_service.py"], cwd=tmp)


RUNNERS = {"python -": _stdin, "python -c": _dash_c, "REPL": _repl, "IPython": _ipython, "notebook": _notebook,
           "pytest": _pytest}


def test_every_way_of_running_the_script_gives_the_file_runs_answer_in_its_time(tmp_path) -> None:
    tmp = str(tmp_path)
    with open(os.path.join(tmp, "service.py"), "w") as f:
        f.write(SCRIPT)
    with ThreadPoolExecutor(max_workers=2) as pool:
        file_run = pool.submit(_file, tmp)
        runs = {name: pool.submit(run, tmp) for name, run in RUNNERS.items()}
        base = file_run.result()
        got = {name: future.result() for name, future in runs.items()}
    assert base["verdict"] == "leak" and base["culprit"] == "__main__.open_session", base
    assert base["root"].startswith("__main__.SESSIONS["), base
    for name, result in got.items():
        module = "test_service." if name == "pytest" else "__main__."  # pytest imports the test file as a module
        same = {key: (result[key] or "").replace(module, "__main__.") for key in ("culprit", "root")}
        assert (result["verdict"], same["culprit"]) == (base["verdict"], base["culprit"]), (name, result, base)
        assert same["root"].split("[")[0] == base["root"].split("[")[0], (name, result, base)
    slow = {name: round(r["cpu"] / base["cpu"], 2) for name, r in got.items() if r["cpu"] > 1.5 * base["cpu"]}
    assert not slow, (slow, base["cpu"], {name: r["cpu"] for name, r in got.items()})
