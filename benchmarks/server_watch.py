"""Cold forecasts of a real gunicorn server against each worker's rate after a long warm-up.

Starts the test service of tests/servers/ (3 workers; sync and uvicorn side by side, leaking and
fixed), watches each master from the moment it starts for ``--seconds`` (default 360) under the
harness's paced load, then prints per worker:

- ``cold``: leakkit's rate from the first ``--cold`` seconds (default 90), fitted after the warm-up
  it finds itself (the number ``leakkit watch`` prints after a 90 s watch of a fresh server);
- ``line``: a Theil-Sen line through the same 90 s, warm-up included (what a forecast without
  warm-up detection fits);
- ``warm``: least squares over the samples after ``--warm`` seconds (default 180): the reference;
- the ratios to ``warm``, and the fixed release's verdicts from the cold watch in every column.

    python benchmarks/server_watch.py [--seconds 360] [--cold 90] [--warm 180]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading

# benchmarks/ holds a bisect.py: it must not shadow the standard library's
sys.path[0] = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests")

from servers.harness import driving, gunicorn  # noqa: E402

import leakkit  # noqa: E402
from leakkit.analysis.forecast import theil_sen  # noqa: E402

MIB = 1024 * 1024


def least_squares(t, y) -> float:
    n = len(t)
    mt, my = sum(t) / n, sum(y) / n
    return sum((a - mt) * (b - my) for a, b in zip(t, y, strict=True)) / sum((a - mt) ** 2 for a in t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=360.0)
    parser.add_argument("--cold", type=float, default=90.0)
    parser.add_argument("--warm", type=float, default=180.0)
    parser.add_argument("--out-dir", help="keep each watch's recording there (CSV)")
    args = parser.parse_args()
    frames = {}
    with contextlib.ExitStack() as stack:
        servers = {(kind, fixed): stack.enter_context(gunicorn(kind, fixed=fixed))
                   for kind in ("sync", "uvicorn") for fixed in (False, True)}

        def run(key, server):
            out = os.path.join(args.out_dir, f"{key[0]}{'-fixed' if key[1] else ''}.csv") if args.out_dir else None
            frames[key] = leakkit.watch(server.master_pid, interval=0.5, duration=args.seconds, live=False, out=out)

        threads = [threading.Thread(target=run, args=item) for item in servers.items()]
        for thread in threads:
            thread.start()
        for server in servers.values():
            server.wait_ready()
        for server in servers.values():
            stack.enter_context(driving(server, seconds=args.seconds + 30))
        for thread in threads:
            thread.join()
    print(f"3 workers each, {args.seconds:.0f} s watched from a cold start; rates of rss in MiB/min")
    print(f"{'server':<14} {'pid':>7} {'cold':>6} {'line':>6} {'warm':>6} {'cold/warm':>9} {'line/warm':>9}  verdict (cold)")
    for (kind, fixed), frame in frames.items():
        cold = frame[frame["t"] <= args.cold]
        report = leakkit.forecast_workers(cold, "256MiB")
        for pid, result in report.forecasts.items():
            if report.table.set_index("pid").loc[pid, "role"] == "master":
                continue
            rows = frame[frame["pid"] == pid]
            late = rows[rows["t"] >= args.warm]
            warm = least_squares(late["t"].tolist(), late["rss"].astype(float).tolist()) * 60 / MIB
            early = cold[cold["pid"] == pid]
            line = theil_sen(early["t"].to_numpy(float), early["rss"].to_numpy(float))[0] * 60 / MIB
            rate = result.rate_bytes_per_s * 60 / MIB
            shapes = ", ".join(leakkit.forecast(cold, pid=pid, column=c).label for c in ("rss", "uss", "pss"))
            name = f"{kind}{'-fixed' if fixed else ''}"
            ratios = [f"{'-':>9}"] * 2 if fixed else [f"{a / warm:9.2f}" for a in (rate, line)]
            print(f"{name:<14} {pid:>7} {rate:6.2f} {line:6.2f} {warm:6.2f} {ratios[0]} {ratios[1]}  {shapes}")


if __name__ == "__main__":
    main()
