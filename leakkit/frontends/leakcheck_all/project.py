"""The package under test: where ``--leakcheck-all`` has bisect look for a leaking test's culprit.

A test's own module rarely holds the code that leaks; the project it tests does. It is found
without configuration: the installed distribution of the nearest project file up from the tests
(pyproject.toml, setup.cfg), else the top-level packages of the source tree, leaving out the
project's tooling modules, which importing would run.
"""
from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Any

_SKIP_DIRS = {"tests", "test", "testing", "docs", "doc", "examples", "example", "benchmarks", "bench",
              "scripts", "tools", "build", "dist", "site-packages"}
_SKIP_MODULES = {"setup", "conftest", "noxfile", "tasks", "fabfile", "manage", "docs_conf"}


def with_submodules(targets: list[Any]) -> list[Any]:
    """Each package followed by its submodules imported so far: a module target stands for the
    functions defined in that module only, and a package's code mostly lives in its submodules
    (``cachetools.keys.hashkey``, not ``cachetools``). Read at bisect time, after the test has
    imported what it uses."""
    out: list[Any] = []
    for target in targets:
        out.append(target)
        if isinstance(target, types.ModuleType) and hasattr(target, "__path__"):
            prefix = target.__name__ + "."
            out += [module for name, module in sorted(sys.modules.items())
                    if name.startswith(prefix) and isinstance(module, types.ModuleType)]
    return out


def _project_name(root: str) -> str | None:
    """The distribution name a project directory declares (pyproject.toml, setup.cfg)."""
    pyproject = os.path.join(root, "pyproject.toml")
    if os.path.exists(pyproject):
        try:
            import tomllib
        except ImportError:  # 3.10
            tomllib = None
        try:
            with open(pyproject, "rb") as handle:
                if tomllib is not None:
                    name = tomllib.load(handle).get("project", {}).get("name")
                    if name:
                        return str(name)
        except Exception:
            pass
    setup_cfg = os.path.join(root, "setup.cfg")
    if os.path.exists(setup_cfg):
        import configparser

        parser = configparser.ConfigParser()
        try:
            parser.read(setup_cfg)
            return parser.get("metadata", "name", fallback=None)
        except Exception:
            return None
    return None


def _distribution_packages(name: str) -> list[str]:
    """Top-level import names of an installed distribution."""
    from importlib import metadata

    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return []
    top = (dist.read_text("top_level.txt") or "").split()
    if top:
        return top
    names = []
    for path in dist.files or ():
        head = path.parts[0] if path.parts else ""
        if head.endswith((".dist-info", ".egg-info", ".pth")) or head in ("..", "__pycache__") or head.startswith("__editable__"):
            continue
        head = head[:-3] if head.endswith(".py") else head
        if head.isidentifier() and head not in names:
            names.append(head)
    return names


def _scan(root: str) -> list[str]:
    """Top-level packages of a source tree (ROOT/* and ROOT/src/*); its loose modules only when it
    has no package. Beside a package, a top-level ``.py`` is the project's tooling (``setup.py``,
    ``versioneer.py``, ``noxfile.py``): importing it as a target runs it, and its warnings would
    land on the test being bisected."""
    packages: list[str] = []
    modules: list[str] = []
    for base in (root, os.path.join(root, "src")):
        try:
            entries = sorted(os.listdir(base))
        except OSError:
            continue
        for entry in entries:
            path = os.path.join(base, entry)
            if entry.startswith((".", "_")) or entry in _SKIP_DIRS:
                continue
            if os.path.isdir(path) and os.path.exists(os.path.join(path, "__init__.py")) and entry.isidentifier():
                packages.append(entry)
            elif entry.endswith(".py") and entry[:-3].isidentifier() and entry[:-3] not in _SKIP_MODULES \
                    and not entry.startswith("test"):
                modules.append(entry[:-3])
    return packages or modules


def package_under_test(rootdir: str, testdir: str) -> list[Any]:
    """The modules a test directory tests: the installed distribution of the project it sits in,
    else the top-level packages of the rootdir. Names that do not import are left out."""
    root = testdir
    names: list[str] = []
    while True:  # the nearest directory up from the tests that declares a project
        name = _project_name(root)
        if name:
            names = _distribution_packages(name)
            break
        if os.path.samefile(root, rootdir) or os.path.dirname(root) == root:
            break
        root = os.path.dirname(root)
    if not names:
        names = _scan(root) or _scan(rootdir)
    modules = []
    for name in names:
        if name in ("tests", "test", "conftest"):
            continue
        try:
            modules.append(importlib.import_module(name))
        except Exception:
            continue
    return modules
