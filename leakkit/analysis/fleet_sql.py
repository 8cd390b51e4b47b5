"""The SQL ``leakkit fleet`` runs (DuckDB's dialect), one statement per question.

Why plain SQL text: the fleet's recordings are hive-partitioned Parquet
(:mod:`leakkit.recording.export.fleet_writer`), and a team past one machine runs the same
questions in Spark or Trino; the statements here are printed by ``leakkit fleet --sql`` and
in ``docs/fleet.md`` as they run. Only ``read_parquet`` and the aggregate names are DuckDB's
(``arg_max_null`` is Spark's ``max_by``, ``quantile_cont`` is ``percentile_approx``).

What is read: one footer per worker, not its rows. FleetWriter puts a summary in every file
(``leakkit.summary``: the process's rows and first row so far, its last row, since when the last
verdict has held), so the per-worker table comes from each worker's newest file (chosen by
name), 1,000 footers for 1,000 workers however many days are kept, where the same answers from
the rows decode 8.6 M samples for one day of them (~5 s of CPU here, against ~0.2 s). The
row-by-row SQL, for Spark or Trino over the same files, is in ``docs/fleet.md``;
:func:`samples_view` gives the rows for queries of your own.

Figures: the per-worker rate, its interval, the verdict and the time to the limit are the
monitor's own (its last sample), the numbers its Prometheus gauges showed; ``average_bytes_per_s``
is the memory's change between the first and the last sample over the time between, a check beside them.
A worker is one process life: ``host, service, pid, started_unix_s`` (a reused pid is another).
A window (``since``) keeps the workers with samples in it; their figures are their whole life's.
"""
from __future__ import annotations

#: Verdicts that count a worker as leaking (the monitor's word for growth that goes on).
LEAK_VERDICTS: tuple[str, ...] = ("leak",)
#: The memory columns a fleet can be judged by; a row without it falls back to rss_bytes.
MEMORY_COLUMNS = ("rss", "pss", "uss")
WORKER_KEY = "host, service, pid, started_unix_s"


def quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _files(files: str | list[str], short: bool = False) -> str:
    if isinstance(files, str):
        return quote(files)
    if short and len(files) > 4:
        return f"[{quote(files[0])}, /* ... {len(files) - 2:,} more files ... */ {quote(files[-1])}]"
    return "[" + ", ".join(quote(f) for f in files) + "]"


def files_table(files: list[str], *, short: bool = False) -> str:
    """One row per file given (each worker's newest, chosen by name: :func:`leakkit.analysis.fleet.newest_files`):
    its partition (from the path) and its footer summary. No row of data is read. ``short``: the
list shortened, for reading."""
    part = r"'/host=([^/]*)/service=([^/]*)/pid=([0-9]+)/[^/]*$'"
    return f"""CREATE OR REPLACE TEMP TABLE files AS
SELECT url_decode(regexp_extract(file_name, {part}, 1)) AS host,
       url_decode(regexp_extract(file_name, {part}, 2)) AS service,
       CAST(regexp_extract(file_name, {part}, 3) AS BIGINT) AS pid,
       CAST(decode(value) AS JSON) AS summary
FROM parquet_kv_metadata({_files(files, short)})
WHERE decode(key) = 'leakkit.summary'"""


def samples_view(files: str | list[str]) -> str:
    """The rows of the files given, with the partition columns typed (a host named ``1234`` stays
    text; pid is a number): for plots, and for queries of your own."""
    return (f"CREATE OR REPLACE TEMP VIEW samples AS\n"
            f"SELECT * FROM read_parquet({_files(files)}, hive_partitioning = true,\n"
            f"    hive_types = {{'host': VARCHAR, 'service': VARCHAR, 'pid': BIGINT}})")


COUNTS = "SELECT count(*) AS files, max(CAST(summary->>'$.last.unix_time_s' AS DOUBLE)) AS last_s FROM files"


def _last(field: str, kind: str) -> str:
    return f"CAST(summary->>'$.last.{field}' AS {kind})"


def workers(column: str, start_s: float | None) -> str:
    """One row per worker (a process life) from its newest file's summary: its last status (the
    monitor's own figures), its first memory reading, and the average growth between the two."""
    leak = ", ".join(quote(v) for v in LEAK_VERDICTS)
    memory = "CAST(coalesce(summary->>'$.{0}.{1}_bytes', summary->>'$.{0}.rss_bytes') AS BIGINT)"
    window = f"\n    WHERE CAST(summary->>'$.last.unix_time_s' AS DOUBLE) >= {start_s!r}" if start_s is not None else ""
    return f"""CREATE OR REPLACE TEMP TABLE workers AS
WITH w AS (
    SELECT host, service, pid,
           CAST(summary->>'$.last.started_unix_s' AS DOUBLE) AS started_unix_s,
           summary->>'$.last.role' AS role,
           summary->>'$.last.version' AS version,
           CAST(summary->>'$.rows_total' AS BIGINT) AS samples,
           CAST(summary->>'$.life_first.unix_time_s' AS DOUBLE) AS first_s,
           CAST(summary->>'$.last.unix_time_s' AS DOUBLE) AS last_s,
           {memory.format("life_first", column)} AS first_bytes,
           {memory.format("last", column)} AS memory_bytes,
           {_last("rate_bytes_per_s", "DOUBLE")} AS rate_bytes_per_s,
           {_last("rate_low_bytes_per_s", "DOUBLE")} AS rate_low_bytes_per_s,
           {_last("rate_high_bytes_per_s", "DOUBLE")} AS rate_high_bytes_per_s,
           summary->>'$.last.verdict' AS verdict,
           coalesce(summary->>'$.last.verdict' IN ({leak}), false) AS leaking,
           CAST(summary->>'$.verdict_since_s' AS DOUBLE) AS verdict_since_s,
           {_last("limit_bytes", "BIGINT")} AS limit_bytes,
           {_last("seconds_to_limit", "DOUBLE")} AS seconds_to_limit,
           {_last("snapshots", "BIGINT")} AS snapshots
    FROM files{window}
)
SELECT * EXCLUDE (verdict_since_s),
       CASE WHEN leaking THEN verdict_since_s END AS leak_since_s,
       (memory_bytes - first_bytes) / nullif(last_s - first_s, 0) AS average_bytes_per_s
FROM w"""


def alive(stale_s: float) -> str:
    """Mark the workers whose last sample is within ``stale_s`` of the newest one in the fleet."""
    return (f"ALTER TABLE workers ADD COLUMN alive BOOLEAN;\n"
            f"UPDATE workers SET alive = last_s >= (SELECT max(last_s) FROM workers) - {stale_s!r}")


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


WORKERS_TABLE = f"""SELECT *
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
