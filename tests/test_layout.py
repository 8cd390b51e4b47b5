"""The package layout is the design: every arrow between leakkit's packages points one way.

The flow reads probes -> retention -> recording -> analysis -> reports -> tracing / engine ->
front ends: a package imports only the packages before it (and the base modules, ``leakkit/_*.py``).
Modules stay small (400 lines) and no private name (``_x``) crosses a module boundary, so a change
inside one module cannot break another's assumptions. The tests read the source with :mod:`ast`, so
imports made inside functions (lazy ones) count as arrows too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "leakkit"

#: Packages in flow order; a package may import only those at a lower or equal rank.
ORDER = ["base", "probes", "retention", "recording", "analysis", "reports", "tracing", "engine", "frontends"]
#: The top: the lazy public map and ``python -m leakkit`` may import anything.
TOP = {"__init__", "__main__"}
MAX_LINES = 400


def _modules() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(dotted: str) -> str:
    parts = dotted.split(".")
    if len(parts) == 1:
        return "top"
    if len(parts) == 2 and (parts[1].startswith("_") or parts[1] in TOP):
        return "top" if parts[1] in TOP else "base"
    return parts[1]


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved against ``path``)."""
    if not node.level:
        return node.module or ""
    base = _dotted(path).split(".")
    if path.name != "__init__.py":
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) for every leakkit import in ``path``, top level or not."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            module = _resolve(path, node)
            if module == "leakkit" or module.startswith("leakkit."):
                found.append((node.lineno, module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("leakkit."):
                    found.append((node.lineno, alias.name, []))
    return found


def _arrows(path: Path) -> list[tuple[int, str]]:
    """(line, module) each import points at: ``from .. import _compat`` points at leakkit._compat."""
    arrows = []
    for line, module, names in _imports(path):
        subs = [f"{module}.{n}" for n in names if _is_module(f"{module}.{n}") or _is_c_part(f"{module}.{n}")]
        arrows.extend((line, sub) for sub in subs)
        if len(subs) < len(names) or not names:
            arrows.append((line, module))
    return arrows


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split(".")[1:])
    return (ROOT / rel).with_suffix(".py").exists() or (ROOT / rel / "__init__.py").exists()


def _is_c_part(dotted: str) -> bool:
    rel = Path(*dotted.split(".")[1:])
    return (ROOT / rel).with_suffix(".c").exists()


def test_the_packages_are_the_flow():
    present = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert present == set(ORDER) - {"base"}, f"packages {sorted(present)} are not the flow {ORDER}"


def test_every_arrow_points_one_way():
    wrong = []
    for path in _modules():
        here = _package(_dotted(path))
        if here == "top":
            continue
        for line, module in _arrows(path):
            there = _package(module)
            if there == "top" and here != "frontends":
                # Only front ends use the public API by its top-level names; inside, the parts.
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({here}) imports the top package ({module})")
            elif there == "top":
                continue
            elif ORDER.index(there) > ORDER.index(here):
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({here}) imports {module} ({there})")
    assert not wrong, "imports against the flow:\n" + "\n".join(wrong)


def test_no_private_name_crosses_a_module():
    wrong = []
    for path in _modules():
        me = _dotted(path)
        tree = ast.parse(path.read_text(), str(path))
        aliases: dict[str, str] = {}
        for line, module, names in _imports(path):
            for name in names:
                target = f"{module}.{name}"
                if _is_module(target) or _is_c_part(target):
                    aliases[name] = target
                    if name.startswith("_") and _package(target) != "base" and not _is_c_part(target):
                        wrong.append(f"{path.relative_to(ROOT)}:{line} imports the private module {target}")
                elif name.startswith("_") and not name.startswith("__") and module != me:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}'s private {name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__") and not _is_c_part(aliases[node.value.id])):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} reads {aliases[node.value.id]}.{node.attr}")
    assert not wrong, "private names used across modules:\n" + "\n".join(wrong)


def test_the_judge_knows_only_the_record():
    """bisect's judge works on the plain record the engine hands it, not on the engine's objects."""
    engine = {m for _l, m, _n in _imports(ROOT / "engine" / "judge.py") if _package(m) == "engine"}
    assert engine <= {"leakkit.engine.record"}, engine


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_are_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (at most {MAX_LINES})"


def test_the_checks_can_fail(tmp_path):
    """The reader finds an arrow against the flow and a private import, so a pass means something."""
    fake = ROOT / "probes" / "process.py"
    tree = ast.parse("from ..engine.run import Run\nfrom .heap import _private\n")
    got = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            got.append((_package(_resolve(fake, node)), [a.name for a in node.names]))
    assert got == [("engine", ["Run"]), ("probes", ["_private"])]
    assert ORDER.index("engine") > ORDER.index(_package(_dotted(fake)))
