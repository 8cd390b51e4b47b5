"""Readings of memory, cheapest first: the process (RSS, USS, PSS, fds), the allocators, the heap.

Nothing here keeps state between calls or imports anything above it (recording, analysis, ...).
The C parts (``_heapscan``, ``_containerscan``, ``_stackcut``) are optional: each has a Python path giving the
same answer.
"""
