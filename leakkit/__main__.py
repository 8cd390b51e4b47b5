"""``python -m leakkit``: the same command line as ``leakkit`` (see :mod:`leakkit.frontends.cli`)."""
import sys

from .frontends.cli import main

sys.exit(main(prog="python -m leakkit"))
