"""Front ends that hold no logic: the ``leakkit`` command, the IPython magics, the pytest plugin."""
