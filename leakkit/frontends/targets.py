"""Targets named by text: the ``pkg.mod``, ``pkg.mod:Class.method`` people type, turned into objects.

Every front end takes targets as text (a CLI argument, a magic's ``--targets``, a marker's or the
fixture's ``targets=``, ``--leakcheck-targets``); they all resolve it here, so a name means the
same object, and a bad one gets the same message, wherever it is typed.
"""
from __future__ import annotations

import importlib
from typing import Any

from .._errors import InvalidArgumentError, expected


def resolve(spec: str, namespace: dict[str, Any] | None = None) -> Any:
    """The object ``spec`` names: ``pkg.mod``, ``pkg.mod.func``, ``pkg.mod:Class.method``, or a name in ``namespace``.

    Raises InvalidArgumentError when nothing by that name can be imported or looked up.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise expected("a name such as 'pkg.module', 'pkg.module:function' or 'module.Class'", "name", spec)
    spec = spec.strip()
    if ":" in spec:
        module_name, _, attribute = spec.partition(":")
        return _attributes(_import(module_name, spec), attribute, spec)
    head, _, rest = spec.partition(".")
    if namespace is not None and head in namespace:
        return _attributes(namespace[head], rest, spec)
    parts = spec.split(".")
    for cut in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
        module_name = ".".join(parts[:cut])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and not (module_name == error.name or module_name.startswith(error.name + ".")):
                raise _import_failed(spec, error) from None  # the module exists, one of its imports does not
            continue
        except ImportError as error:
            raise _import_failed(spec, error) from None
        except Exception as error:  # the user's module raised while importing: their error, not ours
            raise _import_failed(spec, error) from None
        return _attributes(module, ".".join(parts[cut:]), spec)
    raise InvalidArgumentError(f"expected an importable module or a name defined here, received {spec!r} "
                               f"(nothing by that name; is its directory on sys.path?)")


def resolve_all(specs: Any, namespace: dict[str, Any] | None = None) -> list[Any]:
    """Targets from text or objects: strings may list several names separated by commas."""
    items = specs if isinstance(specs, (list, tuple)) else [specs]
    found: list[Any] = []
    for item in items:
        if isinstance(item, str):
            found.extend(resolve(name, namespace) for name in item.split(",") if name.strip())
        else:
            found.append(item)
    if not found:
        raise expected("at least one module, class or function to search", "targets", specs)
    return found


def _import(module_name: str, spec: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except Exception as error:  # ImportError, or whatever the module raised while importing
        raise _import_failed(spec, error) from None


def _import_failed(spec: str, error: Exception) -> InvalidArgumentError:
    cause = "" if isinstance(error, ImportError) else "importing it raised "
    return InvalidArgumentError(f"expected an importable name, received {spec!r}: {cause}{type(error).__name__}: {error}")


def _attributes(obj: Any, path: str, spec: str) -> Any:
    for name in filter(None, path.split(".")):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise InvalidArgumentError(f"expected {spec!r} to name an object, received no attribute {name!r} "
                                       f"on {getattr(obj, '__name__', type(obj).__name__)}") from None
        except Exception as error:  # a module __getattr__ or a property that raised
            raise InvalidArgumentError(f"expected {spec!r} to name an object, received {type(error).__name__} "
                                       f"looking up {name!r}: {error}") from None
    return obj
