"""Front ends that hold no logic: the ``leakkit`` command, the IPython magics, the pytest plugin.

What they share is here too: :mod:`.check`, the one repeat loop they all run, and :mod:`.targets`,
which turns the names people type into the objects bisect searches.
"""
