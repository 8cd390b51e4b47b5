"""Where fleets look: the monitor's per-worker figures as Prometheus gauges (an endpoint, or
prometheus_client's multiprocess files), OpenTelemetry observable gauges, and hive-partitioned
Parquet recordings that DuckDB, Spark and Trino read in place.

Each exporter is a monitor listener (``Monitor.add_listener(fn)``: ``fn(status)`` after each
sample, on the monitor's thread) and imports no pandas or numpy: it runs inside production workers.
"""
