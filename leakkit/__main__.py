"""``python -m leakkit``: the same command line as ``leakkit`` (see :mod:`leakkit.cli`)."""
import sys

from .cli import main

sys.exit(main(prog="python -m leakkit"))
