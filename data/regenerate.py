"""Regenerate the recordings in this folder that the notebooks load (see README.md here).

    python data/regenerate.py                  # all of them (~25 s)
    python data/regenerate.py crawler-worker.csv   # only the ones named

The notebooks call :func:`ensure` with the names they need, which regenerates only missing files.
Recordings are real (a watched process, a traced function), so numbers differ between runs; the
shapes do not, and that is all the notebooks assert on.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
NOTEBOOKS = HERE.parent / "notebooks"

#: a service that warms a 40 MiB cache for ~3 s, then serves from it at a steady size
WARMING_SERVICE = """
import time
cache = {}
for key in range(160):          # warm-up: fill the cache, 256 KiB an entry
    cache[key] = bytearray(256 * 1024)
    time.sleep(0.02)
for tick in range(250):         # steady state: reads only, temporaries freed at once
    page = bytes(cache[tick % 160][:4096])
    time.sleep(0.02)
"""


def crawler_worker_csv(path: pathlib.Path) -> None:
    """A leakkit watch CSV: the case study's crawler worker, leaking at 20 ticks/s for 12 s."""
    from leakkit.recording.watch import watch

    argv = [sys.executable, "crawler_worker.py", "--seconds", "12", "--rate", "20"]
    worker = subprocess.Popen(argv, cwd=NOTEBOOKS, stdout=subprocess.PIPE, text=True)
    try:
        if worker.stdout.readline().strip() != "ready":
            raise RuntimeError("crawler_worker.py did not start")
        path.unlink(missing_ok=True)
        pathlib.Path(str(path) + ".json").unlink(missing_ok=True)
        watch(worker, interval=0.25, out=path, limit="256MiB")
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait()
        worker.stdout.close()
    _relative_cmdline(path, "python crawler_worker.py --seconds 12 --rate 20")


def _relative_cmdline(path: pathlib.Path, cmdline: str) -> None:
    """Replace the machine's interpreter path in a recording's metadata with a plain command."""
    import json

    sidecar = pathlib.Path(str(path) + ".json")
    if sidecar.exists():  # a watch CSV: its metadata is in the JSON file beside it
        data = json.loads(sidecar.read_text(encoding="utf-8"))
        for session in data["sessions"]:
            session["cmdline"] = cmdline.split()
            session["pid"] = None
        sidecar.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    out = []
    for line in lines:
        if line.startswith("CMDLINE "):
            line = f"CMDLINE {cmdline}\n"
        out.append(line)
    path.write_text("".join(out), encoding="utf-8")


def warming_service_dat(path: pathlib.Path) -> None:
    """An mprof .dat written by memory-profiler's own ``mprof run``: a cache warming up, then flat."""
    with tempfile.TemporaryDirectory() as tmp:
        script = pathlib.Path(tmp) / "warming_service.py"
        script.write_text(WARMING_SERVICE, encoding="utf-8")
        out = pathlib.Path(tmp) / "out.dat"
        subprocess.run([sys.executable, "-m", "mprof", "run", "--interval", "0.1", "--output", str(out),
                        sys.executable, str(script)], check=True, stdout=subprocess.DEVNULL)
        path.write_text(out.read_text(encoding="utf-8"), encoding="utf-8")
    _relative_cmdline(path, "python warming_service.py")


class Session:
    """A user session of a small web handler; the class keeps every session it ever made."""

    __module__ = "handlers"  # the same name whether this file runs as a script or is imported
    _registry: list = []

    def __init__(self, user: str) -> None:
        self.user = user
        self.headers = {"user": user, "accept": "text/html"}
        self.body = bytearray(512)
        Session._registry.append(self)  # for an admin page, never pruned: the leak


def handle_request(n: int) -> int:
    session = Session(f"user-{n}")
    scratch = [bytes(64) for _ in range(20)]  # temporaries, freed on return
    return len(session.body) + len(scratch)


def handler_trace_csv(path: pathlib.Path) -> None:
    """A leakkit trace recording (``Trace.save``) of a handler whose sessions are kept by a class list."""
    import leakkit

    traced = leakkit.trace(handle_request, checkpoint_every=25, name="handlers.handle_request")
    try:
        for n in range(500):
            traced(n)
        traced.report()  # takes the last checkpoint
        traced.save(path)
    finally:
        traced.stop()
        Session._registry.clear()
    _shrink_summaries(path)


def _shrink_summaries(path: pathlib.Path, keep: int = 40) -> None:
    """Keep the type-summary rows that matter: types whose count or size changed, and the biggest.

    A summary lists every type in the heap (thousands here: pandas, numpy); the report only needs
    the growing ones, and the file stays small.
    """
    import leakkit
    from leakkit.recording.tables import Recording, save

    rec = leakkit.load(path)
    summaries = rec.summaries
    wide = summaries.pivot_table(index="type", columns="call", values="count", aggfunc="sum", fill_value=0)
    sizes = summaries.pivot_table(index="type", columns="call", values="size", aggfunc="sum", fill_value=0)
    changed = set(wide.index[(wide.nunique(axis=1) > 1) | (sizes.nunique(axis=1) > 1)])
    biggest = set(summaries.groupby("type")["size"].max().nlargest(keep).index)
    kept = summaries[summaries["type"].isin(changed | biggest)].reset_index(drop=True)
    save(Recording(rec.calls, rec.checkpoints, kept), path)


RECORDINGS = {
    "crawler-worker.csv": crawler_worker_csv,
    "warming-service.dat": warming_service_dat,
    "handler-trace.csv": handler_trace_csv,
}


def ensure(*names: str, folder: str | os.PathLike = HERE) -> dict[str, pathlib.Path]:
    """The paths of the named recordings, regenerating any that are missing."""
    paths = {}
    for name in names or RECORDINGS:
        if name not in RECORDINGS:
            raise ValueError(f"expected one of {sorted(RECORDINGS)}, received {name!r}")
        path = pathlib.Path(folder) / name
        if not path.exists():
            RECORDINGS[name](path)
        paths[name] = path
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"recordings to regenerate (default all: {', '.join(RECORDINGS)})")
    args = parser.parse_args(argv)
    for name in args.names or RECORDINGS:
        if name not in RECORDINGS:
            parser.error(f"expected one of {', '.join(RECORDINGS)}, received {name!r}")
        path = HERE / name
        RECORDINGS[name](path)
        print(f"{path.name}: {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
