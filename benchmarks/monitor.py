"""What the monitor costs a real worker, and how fast it catches a 1 MiB/min leak.

1. Memory: a gunicorn sync worker serving a small Flask app, started without and with the
   monitor (``from leakkit.frontends.servers.gunicorn import *`` in gunicorn.conf.py, defaults:
   a sample a second), alternating (off, on, off, on, ...) in one run. After the same requests,
   the worker's RSS and USS are read from outside (smaps_rollup). Target: <= 2 MiB more.
2. CPU: the monitor thread's own CPU time (its ``monitor_cpu_s`` column) over wall time in those
   workers, steady state, and in a busy process (an allocation-heavy loop holding ~200 k objects).
   Target: <= 0.5% of one core.
3. Detection: the time from the start of a sustained 1 MiB/min leak (behind a warm-up, with
   0.3 MiB of noise a sample) to the automatic snapshot's trigger, at the defaults (1 s samples,
   ``sustain`` 300 s), the rule replayed on 20 series; with ``--real``, a real process leaking
   1 MiB/min under the monitor, timed to its first snapshot report (about 7 minutes).

Usage: python benchmarks/monitor.py [--rounds 2] [--seconds 20] [--real]
(run it under ``flock /work/coord/bench.lock`` on a shared machine)
"""
from __future__ import annotations

import os
import sys

# benchmarks/bisect.py is named like the standard library's bisect module: keep this folder
# off the path, or `random` (imported by tempfile) picks it up.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import glob  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

MIB = 1024 * 1024

APP = textwrap.dedent("""
    from flask import Flask, jsonify
    app = Flask(__name__)
    CACHE = {}

    @app.route("/item/<int:n>")
    def item(n):
        CACHE[n % 100] = {"id": n, "name": "x" * 200}
        return jsonify(CACHE[n % 100])
""")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rollup(pid: int) -> tuple[int, int]:
    """(rss, uss) of ``pid`` in bytes, from one smaps_rollup read."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle.read().splitlines()[1:]:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                fields[name.strip()] = int(parts[0]) * 1024
    return fields["Rss"], sum(v for k, v in fields.items() if k.startswith("Private_"))


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(p) for p in handle.read().split()]


def serve(folder: str, monitored: bool, seconds: float) -> dict:
    """One gunicorn master with one sync worker; the worker's memory after the same requests."""
    port = free_port()
    conf = os.path.join(folder, "gunicorn.conf.py")
    with open(conf, "w") as handle:
        handle.write("from leakkit.frontends.servers.gunicorn import *\n" if monitored else "")
    recordings = os.path.join(folder, "recordings")
    env = {**os.environ, "LEAKKIT_MONITOR_DIR": recordings, "PYTHONPATH": folder}
    master = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", conf, "-w", "1", "-b", f"127.0.0.1:{port}",
                               "app:app"], cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/item/0", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for n in range(300):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/item/{n}", timeout=5).read()
        time.sleep(seconds)  # the monitor samples meanwhile (steady state)
        [worker] = children(master.pid)
        rss, uss = rollup(worker)
        cpu = None
        if monitored:
            from leakkit.recording.timeline import load

            [path] = glob.glob(os.path.join(recordings, "*-worker-*.csv"))
            frame = load(path).iloc[2:]
            cpu = (frame["monitor_cpu_s"].iloc[-1] - frame["monitor_cpu_s"].iloc[0]) / (frame["t"].iloc[-1] - frame["t"].iloc[0])
        return {"rss": rss, "uss": uss, "cpu": cpu}
    finally:
        master.send_signal(signal.SIGTERM)
        master.wait(30)


def busy_share(seconds: float) -> float:
    """The monitor thread's CPU share in an allocation-heavy process holding ~200 k objects."""
    from leakkit.recording.monitor import monitor

    with tempfile.TemporaryDirectory() as folder:
        mon = monitor(os.path.join(folder, "busy.csv"), interval=1.0)
        live = [{"id": i, "name": str(i)} for i in range(100_000)]
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            scratch = [str(i) * 3 for i in range(2_000)]
            live[n % len(live)] = {"id": n, "payload": scratch[:10]}
            n += 1
        mon.stop()
        return mon.overhead


def replayed_detection(seeds: int = 20) -> list[float]:
    """Seconds from a 1 MiB/min leak's start to the rule's first 'leak', at the defaults (1 s samples)."""
    from leakkit.recording.monitor_rate import History, judge

    found = []
    for seed in range(seeds):
        rnd = random.Random(seed)
        history = History(300.0)
        for second in range(1800):
            value = 30 * MIB + 8 * MIB * (1 - math.exp(-second / 30)) + second / 60 * MIB + rnd.gauss(0, 0.3 * MIB)
            history.add(float(second), value)
            if judge(history, MIB).verdict == "leak":
                found.append(float(second))
                break
        else:
            found.append(math.inf)
    return found


REAL = textwrap.dedent("""
    import sys, time
    from leakkit.recording.monitor import monitor
    mon = monitor(sys.argv[1], trace_window=30)
    kept, start = [], time.monotonic()
    while not mon.snapshots and time.monotonic() - start < 1200:
        kept.append(bytearray(17_476))  # 1 MiB a minute, one piece a second
        time.sleep(1.0)
    print(time.monotonic() - start)
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--real", action="store_true", help="also time a real 1 MiB/min leak (~7 min)")
    args = parser.parse_args()
    off, on = [], []
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "app.py"), "w") as handle:
            handle.write(APP)
        for round_ in range(args.rounds):
            for monitored, into in ((False, off), (True, on)):
                folder = os.path.join(root, f"{round_}-{int(monitored)}")
                os.makedirs(folder)
                os.symlink(os.path.join(root, "app.py"), os.path.join(folder, "app.py"))
                into.append(serve(folder, monitored, args.seconds))
    rss = statistics.median(r["rss"] for r in on) - statistics.median(r["rss"] for r in off)
    uss = statistics.median(r["uss"] for r in on) - statistics.median(r["uss"] for r in off)
    cpu = statistics.median(r["cpu"] for r in on)
    print(f"gunicorn sync worker (Flask), {args.rounds} rounds off/on, median worker without the monitor: "
          f"RSS {statistics.median(r['rss'] for r in off) / MIB:.1f} MiB, USS {statistics.median(r['uss'] for r in off) / MIB:.1f} MiB")
    print(f"monitor adds: RSS {rss / MIB:+.2f} MiB, USS {uss / MIB:+.2f} MiB (target <= 2 MiB: {'met' if max(rss, uss) <= 2 * MIB else 'NOT met'})")
    print(f"monitor thread CPU in the worker (1 s samples, steady): {cpu:.3%} of one core "
          f"(target <= 0.5%: {'met' if cpu <= 0.005 else 'NOT met'})")
    busy = busy_share(args.seconds)
    print(f"monitor thread CPU in an allocation-heavy process (~200 k objects): {busy:.3%} of one core")
    found = replayed_detection()
    finite = [f for f in found if math.isfinite(f)]
    print(f"1 MiB/min leak -> automatic snapshot (rule replayed, defaults, 20 series): median "
          f"{statistics.median(found) / 60:.1f} min, worst {max(found) / 60:.1f} min, fired in {len(finite)}/20; "
          f"the report follows trace_window (30 s) later")
    if args.real:
        with tempfile.TemporaryDirectory() as folder:
            out = subprocess.run([sys.executable, "-c", REAL, os.path.join(folder, "real.csv")], capture_output=True,
                                 text=True, timeout=1500)
            print(f"1 MiB/min leak, real process at the defaults: first snapshot report after "
                  f"{float(out.stdout.strip()) / 60:.1f} min")


if __name__ == "__main__":
    main()
