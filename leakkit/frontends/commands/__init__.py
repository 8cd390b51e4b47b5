"""The ``leakkit`` command line: one class per subcommand, whose docstring is its help (memray's layout).

Every command has ``prepare_parser(parser)`` and ``run(args, parser) -> int`` (0: no leak found,
1: a leak found, 2: a watched command failed). Errors are raised as :class:`leakkit.LeakkitError`;
:func:`leakkit.frontends.cli.main` turns them into a message on stderr and exit code 2, and any other
exception into exit code 3 (leakkit's own failure).
"""
from __future__ import annotations

from .attach import AttachCommand, SnapshotCommand
from .bisect import BisectCommand
from .fleet import FleetCommand
from .report import ReportCommand
from .run import RunCommand
from .watch import WatchCommand

COMMANDS = {"watch": WatchCommand, "run": RunCommand, "report": ReportCommand, "bisect": BisectCommand,
            "fleet": FleetCommand, "attach": AttachCommand, "snapshot": SnapshotCommand}

__all__ = ["COMMANDS", "AttachCommand", "BisectCommand", "FleetCommand", "ReportCommand", "RunCommand",
           "SnapshotCommand", "WatchCommand"]
