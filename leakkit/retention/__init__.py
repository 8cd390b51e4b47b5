"""What keeps an object alive: containers that grew and what their new entries hold, the names a
person would type from a root to the object, and the bounds that make a container stop growing.

Reads the heap through :mod:`leakkit.probes.containers` only (no user code runs).
"""
