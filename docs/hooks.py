"""mkdocs hooks: the CLI and magics reference pages are generated from the parsers themselves.

A marker line ``<!-- leakkit:help COMMAND -->`` in a page becomes the ``--help`` text of that
command (``leakkit``, ``leakkit watch``, ..., ``%leakcheck``, ``%leaktrace``), so the reference
cannot drift from what the tools accept.
"""
from __future__ import annotations

import re

_MARKER = re.compile(r"^<!-- leakkit:help (?P<name>[^>]+?) -->$", re.M)


def _help(name: str) -> str:
    if name.startswith("%"):
        from leakkit.frontends import magics

        parser = {"%leakcheck": magics.LEAKCHECK, "%leaktrace": magics.LEAKTRACE}[name]
        return parser.format_help()
    from leakkit.frontends.cli import build_parser

    parser = build_parser("leakkit")
    words = name.split()[1:]
    if not words:
        return parser.format_help()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return subparsers.choices[words[0]].format_help()


def on_page_markdown(markdown: str, **_: object) -> str:
    import os

    os.environ.setdefault("COLUMNS", "100")  # argparse wraps help at the terminal's width
    return _MARKER.sub(lambda m: f"```text\n{_help(m.group('name')).rstrip()}\n```", markdown)
