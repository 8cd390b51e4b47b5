"""A request validator that builds ``typing.Optional[T]`` / ``typing.Union[T, None]`` hints for
each field type it meets (300 model classes, made at start), the way validation layers do.

Look-alike (stdlib). ``typing``'s special forms memoize through ``functools.lru_cache``
(``typing._tp_cache``, maxsize 128 per form): every new ``Optional[T]`` adds an entry until 128,
then the least recent is evicted. Bounded: the growth stops after 128 calls.
"""
import sys
import typing

MODELS = [type(f"Model{i:03d}", (), {"id": i}) for i in range(300)]
_n = [0]


def field_hint(model: type) -> object:
    return typing.Optional[model]  # noqa: UP045 - the typing form is the point


def validate(value: object, model: type) -> bool:
    hint = field_hint(model)
    return value is None or isinstance(value, typing.get_args(hint)[0])


def workload():
    i = _n[0]
    _n[0] += 1
    model = MODELS[i % len(MODELS)]
    assert validate(model(), model)


TARGETS = [sys.modules[__name__], typing]
EXPECT = {"verdict": ["plateau", "inconclusive"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 900}
