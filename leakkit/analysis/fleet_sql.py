"""The SQL ``leakkit fleet`` runs (DuckDB's dialect), one statement per question.

Why plain SQL text: the fleet's recordings are hive-partitioned Parquet
(:mod:`leakkit.recording.export.fleet_writer`), and a team past one machine runs the same
questions in Spark or Trino; the statements here are printed by ``leakkit fleet --sql`` and
in ``docs/fleet.md`` as they run. Only ``read_parquet`` and the aggregate names are DuckDB's
(``arg_max_null`` is Spark's ``max_by``, ``quantile_cont`` is ``percentile_approx``).

Figures: the per-worker rate, its interval, the verdict and the time to the limit are the
monitor's own (its last sample), the numbers its Prometheus gauges showed; ``fit_bytes_per_s``
is DuckDB's least-squares slope of the memory column over the whole window, a check beside them.
A worker is one process life: ``host, service, pid, started_unix_s`` (a reused pid is another).
"""
from __future__ import annotations

#: Verdicts that count a worker as leaking (the monitor's word for growth that goes on).
LEAK_VERDICTS: tuple[str, ...] = ("leak",)
#: The memory columns a fleet can be judged by; a row without it falls back to rss_bytes.
MEMORY_COLUMNS = ("uss", "pss", "rss")
WORKER_KEY = "host, service, pid, started_unix_s"


def quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def samples_view(glob: str | list[str]) -> str:
    """Every row of every recording matched, with the partition columns typed (a host named
    ``1234`` stays text; pid is a number)."""
    files = quote(glob) if isinstance(glob, str) else "[" + ", ".join(quote(g) for g in glob) + "]"
    return (f"CREATE OR REPLACE TEMP VIEW samples AS\n"
            f"SELECT * FROM read_parquet({files}, hive_partitioning = true, union_by_name = true,\n"
            f"    hive_types = {{'host': VARCHAR, 'service': VARCHAR, 'pid': BIGINT}})")


LAST_TIME = "SELECT max(unix_time_s) AS last_s FROM samples"


def workers(column: str, start_s: float | None) -> str:
    """One row per worker over the window: its last status (the monitor's figures), its first and
    last memory reading, and DuckDB's own slope as a check."""
    leak = ", ".join(quote(v) for v in LEAK_VERDICTS)
    window = f"\n    WHERE unix_time_s >= {start_s!r}" if start_s is not None else ""
    return f"""CREATE OR REPLACE TEMP TABLE workers AS
WITH rows AS (
    SELECT host, service, pid, started_unix_s, unix_time_s, role, version, verdict,
           coalesce({column}_bytes, rss_bytes) AS memory_bytes, rate_bytes_per_s, rate_low_bytes_per_s,
           rate_high_bytes_per_s, limit_bytes, seconds_to_limit, snapshots
    FROM samples{window}
)
SELECT {WORKER_KEY},
       arg_max_null(role, unix_time_s) AS role,
       arg_max_null(version, unix_time_s) AS version,
       count(*) AS samples,
       min(unix_time_s) AS first_s,
       max(unix_time_s) AS last_s,
       arg_min(memory_bytes, unix_time_s) AS first_bytes,
       arg_max_null(memory_bytes, unix_time_s) AS memory_bytes,
       arg_max_null(rate_bytes_per_s, unix_time_s) AS rate_bytes_per_s,
       arg_max_null(rate_low_bytes_per_s, unix_time_s) AS rate_low_bytes_per_s,
       arg_max_null(rate_high_bytes_per_s, unix_time_s) AS rate_high_bytes_per_s,
       arg_max_null(verdict, unix_time_s) AS verdict,
       coalesce(arg_max_null(verdict, unix_time_s) IN ({leak}), false) AS leaking,
       arg_max_null(limit_bytes, unix_time_s) AS limit_bytes,
       arg_max_null(seconds_to_limit, unix_time_s) AS seconds_to_limit,
       max(snapshots) AS snapshots,
       regr_slope(memory_bytes, unix_time_s) AS fit_bytes_per_s,
       max(unix_time_s) FILTER (WHERE verdict IS NULL OR verdict NOT IN ({leak})) AS last_not_leaking_s
FROM rows
GROUP BY {WORKER_KEY}"""


def alive(stale_s: float) -> str:
    """Mark the workers whose last sample is within ``stale_s`` of the newest one in the fleet."""
    return (f"ALTER TABLE workers ADD COLUMN alive BOOLEAN;\n"
            f"UPDATE workers SET alive = last_s >= (SELECT max(last_s) FROM workers) - {stale_s!r}")


def leak_since(files: list[str]) -> str:
    """When each leaking worker's last unbroken run of leak verdicts began (read from its own files only)."""
    leak = ", ".join(quote(v) for v in LEAK_VERDICTS)
    source = "[" + ", ".join(quote(f) for f in files) + "]"
    return f"""SELECT w.host, w.service, w.pid, w.started_unix_s, min(r.unix_time_s) AS leak_since_s
FROM read_parquet({source}, hive_partitioning = true, union_by_name = true,
         hive_types = {{'host': VARCHAR, 'service': VARCHAR, 'pid': BIGINT}}) AS r
JOIN workers AS w USING ({WORKER_KEY})
WHERE w.leaking AND r.verdict IN ({leak}) AND r.unix_time_s > coalesce(w.last_not_leaking_s, -1)
GROUP BY ALL"""


HOSTS = """SELECT host,
       count(*) FILTER (WHERE alive) AS workers,
       count(*) FILTER (WHERE alive AND leaking) AS leaking,
       sum(memory_bytes) FILTER (WHERE alive) AS memory_bytes,
       max(rate_bytes_per_s) FILTER (WHERE alive) AS max_rate_bytes_per_s,
       min(seconds_to_limit) FILTER (WHERE alive) AS min_seconds_to_limit
FROM workers
GROUP BY host
ORDER BY leaking DESC, max_rate_bytes_per_s DESC NULLS LAST, host"""

RATES = """SELECT service,
       count(rate_bytes_per_s) AS workers,
       quantile_cont(rate_bytes_per_s, 0.5) AS p50_bytes_per_s,
       quantile_cont(rate_bytes_per_s, 0.9) AS p90_bytes_per_s,
       quantile_cont(rate_bytes_per_s, 0.99) AS p99_bytes_per_s,
       max(rate_bytes_per_s) AS max_bytes_per_s
FROM workers
WHERE alive
GROUP BY service
ORDER BY service"""

VERSIONS = """SELECT service, version,
       count(*) AS workers,
       count(*) FILTER (WHERE leaking) AS leaking,
       min(started_unix_s) AS first_started_s,
       max(last_s) AS last_s,
       median(rate_bytes_per_s) AS median_rate_bytes_per_s,
       max(rate_bytes_per_s) AS max_rate_bytes_per_s
FROM workers
GROUP BY service, version
ORDER BY service, first_started_s"""


def closest(top: int) -> str:
    """The live workers with the shortest forecast time to their limit."""
    return f"""SELECT host, service, pid, version, memory_bytes, limit_bytes, seconds_to_limit, rate_bytes_per_s, verdict
FROM workers
WHERE alive AND seconds_to_limit IS NOT NULL
ORDER BY seconds_to_limit
LIMIT {int(top)}"""


WORKERS_TABLE = f"""SELECT * EXCLUDE (last_not_leaking_s)
FROM workers
ORDER BY leaking DESC, alive DESC, rate_bytes_per_s DESC NULLS LAST, {WORKER_KEY}"""


def series(files: list[str], column: str, started: list[float], bucket_s: float) -> str:
    """Memory over time of a few workers, averaged in ``bucket_s`` buckets (for plots)."""
    source = "[" + ", ".join(quote(f) for f in files) + "]"
    keep = ", ".join(repr(float(s)) for s in started) or "NULL"
    return f"""SELECT host, service, pid, started_unix_s,
       floor(unix_time_s / {bucket_s!r}) * {bucket_s!r} AS unix_time_s,
       avg(coalesce({column}_bytes, rss_bytes)) AS memory_bytes
FROM read_parquet({source}, hive_partitioning = true, union_by_name = true,
         hive_types = {{'host': VARCHAR, 'service': VARCHAR, 'pid': BIGINT}})
WHERE started_unix_s IN ({keep})
GROUP BY ALL
ORDER BY host, service, pid, started_unix_s, unix_time_s"""
