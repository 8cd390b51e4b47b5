"""trace is invisible (issue 24, class 8): a table of behaviours, each observed on the untraced and
the traced callable, which must give the same observation.

Kinds: sync functions, async functions, generators, async generators, methods (bound, static,
class). Behaviours: what they return and raise, what the objects they make look like (names,
generator states), the generator protocol at its edges (a first ``send(1)``, ``GeneratorExit``
thrown in and caught, ``close`` of one that yields), ``warnings``/``logging`` stack levels,
pickling (by name, into a process pool), copying, introspection.
"""
from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import logging
import pickle
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor

import pytest

import leakkit


# -- the subjects, at module level (pickle finds them by name) ---------------------------------------
def add(a, b=2):
    """Add."""
    return a + b


def fails(message):
    raise ValueError(message)


def warns():
    warnings.warn("from the function", UserWarning, stacklevel=2)
    return "done"


def logs(logger):
    logger.warning("from the function", stacklevel=2)


async def add_async(a, b=2):
    await asyncio.sleep(0)
    return a + b


async def warns_async():
    warnings.warn("from the coroutine", UserWarning, stacklevel=2)
    return "done"


def numbers(n=3):
    """Count."""
    total = 0
    for i in range(n):
        total += (yield i) or 0
    return total


def stubborn():
    """Catches GeneratorExit and yields: close() must complain, throw() gives the value back."""
    try:
        yield "working"
    except GeneratorExit:
        yield "caught"


def echo():
    received = yield "ready"
    while True:
        received = yield f"got {received}"


def keeps_going():
    try:
        yield 1
    except ValueError as error:
        yield f"handled {error}"
    yield 3


async def anumbers(n=3):
    for i in range(n):
        yield i


async def astubborn():
    try:
        yield "working"
    except GeneratorExit:
        yield "caught"


class Shop:
    def __init__(self, base=1):
        self.base = base

    def price(self, amount):
        return self.base + amount

    @staticmethod
    def tax(amount):
        return amount // 10

    @classmethod
    def make(cls, base):
        return cls(base)


# the same subjects, traced; module attributes, so that pickle finds them by their qualified names
T = {name: leakkit.trace(func, summaries=False, checkpoint_every=10**9)
     for name, func in {"add": add, "fails": fails, "warns": warns, "logs": logs, "add_async": add_async,
                        "warns_async": warns_async, "numbers": numbers, "stubborn": stubborn, "echo": echo,
                        "keeps_going": keeps_going, "anumbers": anumbers, "astubborn": astubborn}.items()}
traced_add = T["add"]  # reached by a name other than its own: pickles as "trace add with these options"


class TracedShop(Shop):
    price = leakkit.trace(Shop.price, summaries=False)
    tax = leakkit.trace(staticmethod(Shop.tax), summaries=False)
    make = leakkit.trace(classmethod(Shop.make.__func__), summaries=False)


@leakkit.trace(summaries=False)
def decorated(x):
    return x * 2


class Cart:
    @leakkit.trace(summaries=False)
    def total(self, x):
        return x + 1


def _observe(action):
    """What an action does: ("ok", value) or ("raises", type name, message)."""
    try:
        return ("ok", action())
    except BaseException as error:  # GeneratorExit, StopIteration: observed like any other
        return ("raises", type(error).__name__, str(error))


def _run(coroutine):
    return asyncio.run(coroutine)


def _drain_async(agen_factory, steps):
    async def go():
        agen = agen_factory()
        out = []
        for step in steps:
            out.append(await _aobserve(step(agen)))
        return out
    return _run(go())


async def _aobserve(awaitable):
    try:
        return ("ok", await awaitable)
    except BaseException as error:
        return ("raises", type(error).__name__, str(error))


def _gen_steps(make, steps):
    gen = make()
    return [(_observe(lambda s=step: s(gen))) for step in steps]


def _warning_site(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()  # the line both forms must point at
    return [(w.filename, w.lineno) for w in caught]


def _log_site(func):
    logger = logging.getLogger("leakkit-invisible")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        func(logger)
    finally:
        logger.removeHandler(handler)
    return [(r.pathname, r.lineno, r.funcName) for r in records]


# -- the table: (behaviour, untraced subject, traced subject, observation) ----------------------------
BEHAVIOURS = [
    # sync functions
    ("sync: returns", add, T["add"], lambda f: _observe(lambda: f(1, b=5))),
    ("sync: raises", fails, T["fails"], lambda f: _observe(lambda: f("no"))),
    ("sync: wrong arguments raise the same TypeError", add, T["add"], lambda f: _observe(lambda: f())[:2]),
    ("sync: metadata", add, T["add"], lambda f: (f.__name__, f.__qualname__, f.__doc__, f.__module__,
                                                 str(inspect.signature(f)))),
    ("sync: kind", add, T["add"], lambda f: (inspect.iscoroutinefunction(f), inspect.isgeneratorfunction(f),
                                             inspect.isasyncgenfunction(f), callable(f))),
    ("sync: warnings stacklevel=2 points at the caller", warns, T["warns"], lambda f: _warning_site(f)),
    ("sync: copy and deepcopy give the function itself", add, T["add"],
     lambda f: (copy.copy(f) is f, copy.deepcopy(f) is f, copy.deepcopy([f])[0] is f)),
    ("sync: functools.partial of it", add, T["add"], lambda f: functools.partial(f, 4)(b=1)),
    # async functions
    ("async: returns", add_async, T["add_async"], lambda f: _run(f(1, b=5))),
    ("async: the coroutine's name", add_async, T["add_async"], lambda f: _named(f(1))),
    ("async: kind", add_async, T["add_async"], lambda f: (inspect.iscoroutinefunction(f),
                                                          asyncio.iscoroutinefunction(f))),
    ("async: warnings stacklevel=2 points at the awaiting frame", warns_async, T["warns_async"],
     lambda f: _warning_site(lambda: _run(f()))),
    # generators
    ("gen: a new one is GEN_CREATED, named like the function's", numbers, T["numbers"],
     lambda f: (inspect.getgeneratorstate(f()), f().__name__, f().__qualname__, inspect.isgenerator(f()))),
    ("gen: list and return value", numbers, T["numbers"],
     lambda f: (list(f(4)), _gen_steps(lambda: f(2), [next, lambda g: g.send(5), lambda g: g.send(7)]))),
    ("gen: send(1) first raises TypeError and leaves it usable", echo, T["echo"],
     lambda f: _gen_steps(f, [lambda g: g.send(1), next, lambda g: g.send(3), inspect.getgeneratorstate])),
    ("gen: GeneratorExit thrown in, caught and yielded: the value comes back", stubborn, T["stubborn"],
     lambda f: _gen_steps(f, [next, lambda g: g.throw(GeneratorExit), next, inspect.getgeneratorstate])),
    ("gen: close() of one that yields on GeneratorExit raises RuntimeError", stubborn, T["stubborn"],
     lambda f: _gen_steps(f, [next, lambda g: g.close(), inspect.getgeneratorstate])),
    ("gen: an exception thrown in and handled", keeps_going, T["keeps_going"],
     lambda f: _gen_steps(f, [next, lambda g: g.throw(ValueError("v")), next, next])),
    ("gen: thrown into before it started", keeps_going, T["keeps_going"],
     lambda f: _gen_steps(f, [lambda g: g.throw(KeyError("k")), inspect.getgeneratorstate, next])),
    ("gen: closed before it started, then next()", numbers, T["numbers"],
     lambda f: _gen_steps(f, [lambda g: g.close(), inspect.getgeneratorstate, next])),
    ("gen: delegated to with yield from", numbers, T["numbers"], lambda f: list(_delegate(f))),
    # async generators
    ("async gen: its name", anumbers, T["anumbers"], lambda f: _named(f())),
    ("async gen: async for", anumbers, T["anumbers"], lambda f: _run(_collect(f(4)))),
    ("async gen: asend(1) first raises TypeError", anumbers, T["anumbers"],
     lambda f: _drain_async(f, [lambda a: a.asend(1), lambda a: a.__anext__()])),
    ("async gen: GeneratorExit thrown in, caught and yielded", astubborn, T["astubborn"],
     lambda f: _drain_async(f, [lambda a: a.__anext__(), lambda a: a.athrow(GeneratorExit),
                                lambda a: a.__anext__()])),
    ("async gen: aclose() of one that yields on GeneratorExit", astubborn, T["astubborn"],
     lambda f: _drain_async(f, [lambda a: a.__anext__(), lambda a: a.aclose()])),
    # methods
    ("method: bound, static and class", Shop, TracedShop,
     lambda cls: (cls(3).price(4), cls.tax(55), cls(1).tax(55), type(cls.make(7)) is cls, cls.make(7).base)),
    ("method: a bound method pickles and copies", Shop, TracedShop,
     lambda cls: (pickle.loads(pickle.dumps(cls(3).price))(1), copy.deepcopy(cls(2)).price(1))),
]


def _named(obj):
    name = (obj.__name__, obj.__qualname__)
    if inspect.iscoroutine(obj):
        obj.close()
    return name


async def _collect(agen):
    return [x async for x in agen]


def _delegate(f):
    result = yield from f(3)
    yield ("returned", result)


@pytest.mark.parametrize("behaviour, plain, traced, observe", BEHAVIOURS, ids=[b[0] for b in BEHAVIOURS])
def test_traced_behaves_like_untraced(behaviour, plain, traced, observe):
    assert observe(traced) == observe(plain)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="logging's stacklevel skips importlib frames from 3.11")
def test_logging_stacklevel_points_at_the_same_line():
    assert _log_site(T["logs"]) == _log_site(logs)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_traced_functions_pickle_by_name_or_as_the_same_trace_of_the_same_function(protocol):
    assert pickle.loads(pickle.dumps(decorated, protocol)) is decorated  # by name, as a function
    assert pickle.loads(pickle.dumps(Cart.total, protocol)) is Cart.total
    assert pickle.loads(pickle.dumps(Cart().total, protocol))(1) == 2
    again = pickle.loads(pickle.dumps(traced_add, protocol))
    assert isinstance(again, leakkit.Trace) and again(1) == 3 and again.__wrapped__ is add
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):  # a lambda: as untraced, not picklable
        pickle.dumps(leakkit.trace(lambda: 1, summaries=False), protocol)


def test_a_process_pool_takes_a_traced_function():
    with ProcessPoolExecutor(2) as pool:
        assert list(pool.map(decorated, range(5))) == [0, 2, 4, 6, 8]
        assert list(pool.map(T["add"], range(3), range(3))) == [0, 2, 4]


def test_the_table_covers_every_kind():
    kinds = {b[0].split(":")[0] for b in BEHAVIOURS}
    assert kinds == {"sync", "async", "gen", "async gen", "method"}
    assert len(BEHAVIOURS) >= 25


def test_traced_generators_still_get_one_row_each():
    traced = leakkit.trace(stubborn, summaries=False)
    gen = traced()
    assert next(gen) == "working" and gen.throw(GeneratorExit) == "caught"
    gen.close()
    stuck = traced()
    next(stuck)
    with pytest.raises(RuntimeError, match="ignored GeneratorExit"):
        stuck.close()
    del gen
    never = traced()
    del never
    with pytest.raises(StopIteration):  # it goes on, and finishes
        next(stuck)
    assert len(traced.calls) == 3 and list(traced.calls["error"]) == [None, None, None]


def test_leakkits_own_warning_about_a_traced_call_points_at_the_call(monkeypatch):
    traced = leakkit.trace(add, summaries=False)
    traced(1)

    def broken():
        raise RuntimeError("a checkpoint broke")

    monkeypatch.setattr(traced._checkpoints, "maybe", broken)
    traced._checkpoints.next_call = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert traced(2) == 4  # this line
    line = inspect.currentframe().f_lineno - 1
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, line)]
