"""A form-builder service that validates each submission against the form's own schema, built
from the form's field list with ``type(f"{slug}Schema", (Schema,), fields)`` and memoized per form
with ``functools.lru_cache(maxsize=64)`` (forms come and go: thousands of them, each submitted a
few times).

Two growers at once (marshmallow). The leak: every ``Schema`` subclass registers itself by name in
marshmallow's class registry (``marshmallow.class_registry._registry``, for ``Nested("Name")``
lookups): a new class name per form is two registry entries holding the class (its fields, its
declared-field dicts, hooks), forever, even after the lru_cache has evicted it. Beside it, the
lru_cache of 64 fills, then evicts. The fix builds the classes with ``class Meta: register = False``
(or ``Schema.from_dict``, which does not register): the lru_cache still fills, not a leak.
"""
import functools
import itertools
import sys

import marshmallow
import marshmallow.class_registry
import marshmallow.schema
from marshmallow import Schema, fields

_seq = itertools.count()


def form_fields(form_id: int) -> dict:
    out = {"email": fields.Email(required=True), "name": fields.String(required=True),
           "consent": fields.Boolean(load_default=False)}
    for i in range(form_id % 5 + 3):
        out[f"q{i}"] = fields.String(validate=marshmallow.validate.Length(max=200))
    return out


@functools.lru_cache(maxsize=64)
def schema_for(form_id: int) -> Schema:
    cls = type(f"Form{form_id}Schema", (Schema,), form_fields(form_id))
    return cls()


class _Unregistered(Schema):
    class Meta:
        register = False


@functools.lru_cache(maxsize=64)
def schema_for_fixed(form_id: int) -> Schema:
    cls = type(f"Form{form_id}Schema", (_Unregistered,), form_fields(form_id))
    return cls()


def submit(form_id: int, answers: dict, schema_for=schema_for) -> dict:
    return schema_for(form_id).load(answers)


def _answers(form_id: int) -> dict:
    return {"email": f"user{form_id}@example.com", "name": "Ada", "consent": True,
            **{f"q{i}": f"answer {i}" for i in range(form_id % 5 + 3)}}


def workload():
    form_id = next(_seq)
    submit(form_id, _answers(form_id))


def workload_fixed():
    form_id = next(_seq)
    submit(form_id, _answers(form_id), schema_for_fixed)


def release():
    registry = marshmallow.class_registry._registry
    for name in [n for n in registry if "Form" in n and n.endswith("Schema")]:
        del registry[name]


TARGETS = [sys.modules[__name__], marshmallow.schema, marshmallow.class_registry, Schema]
EXPECT = {"verdict": ["leak"],
          "culprit": ["schema_for", "SchemaMeta.__init__", "class_registry.register", "register", "SchemaMeta.__new__"],
          "root": ["marshmallow.class_registry._registry"],
          "says": ["schema_for (lru_cache", "still filling"]}  # the cache is reported beside the leak
TRUTH = {"kind": "leak", "calls": 300, "min_bytes_per_call": 2000, "root": "marshmallow.class_registry._registry",
         "root_grows_by": 1.9, "release": "release",
         "release_frees": 0.6}  # the schemas the lru_cache replaces during the check were made untraced
