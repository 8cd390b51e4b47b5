"""A griffe extension for the docs: the code's Sphinx roles (``:func:`x```) become links.

leakkit's docstrings cross-reference with reStructuredText roles, which read well in ``help()``
and in editors; mkdocstrings renders Markdown. Each role becomes an optional autoref (a link
when the target is documented on the site, plain code otherwise), and RST's double backticks
become Markdown code.
"""
from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj):`(?P<tilde>~?)(?P<target>[^`]+)`")


def _public() -> dict[str, str]:
    import leakkit

    table = {}
    for name, where in leakkit._LAZY.items():
        module, attribute = where if isinstance(where, tuple) else (where, name)
        table[f"leakkit.{name}"] = f"leakkit.{module}.{attribute}"
    return table


class SphinxRoles(griffe.Extension):
    """Rewrite roles in every docstring griffe loads."""

    def __init__(self) -> None:
        super().__init__()
        self._public = _public()

    def on_instance(self, *, obj: griffe.Object, **_: Any) -> None:
        if obj.docstring is None:
            return
        module = obj.module.path if not obj.is_module else obj.path
        owner = obj.parent.path if obj.parent is not None and obj.parent.is_class else None

        def link(match: re.Match[str]) -> str:
            target = match["target"].removeprefix(".")
            shown = target.rsplit(".", 1)[-1] if match["tilde"] else target
            if target.startswith("leakkit."):
                identifier = self._public.get(target, target)
            elif owner is not None and "." not in target:
                identifier = f"{owner}.{target}"
            else:
                identifier = f"{module}.{target}"
            return f'<autoref identifier="{identifier}" optional><code>{shown}</code></autoref>'

        text = _ROLE.sub(link, obj.docstring.value)
        obj.docstring.value = re.sub(r"``([^`]+)``", r"`\1`", text)
