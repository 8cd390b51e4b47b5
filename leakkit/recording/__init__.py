"""Recordings: columnar buffers of readings, their files (CSV with a JSON sidecar, mprof ``.dat``),
and the two recorders that run beside a program: ``watch`` (another process, from outside) and
``monitor`` (this process, always on).
"""
