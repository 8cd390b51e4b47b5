"""The fixed twin of rw42: the form-builder service builds each form's ``Schema`` subclass from a
base whose ``Meta.register = False``, so marshmallow's class registry never sees it, and keeps the
``functools.lru_cache(maxsize=64)`` of schemas per form.

Look-alike (marshmallow): only the cache that fills and then evicts is left. Each new form
builds a class (fields, declared-field dicts, hooks: ~10 KB) that the lru_cache keeps until 64
forms, then the least recent schema and its class are dropped and collected. Bounded, never a
leak.
"""
import functools
import itertools
import sys

import marshmallow
import marshmallow.class_registry
import marshmallow.schema
from marshmallow import Schema, fields

_seq = itertools.count()


class FormBase(Schema):
    class Meta:
        register = False


def form_fields(form_id: int) -> dict:
    out = {"email": fields.Email(required=True), "name": fields.String(required=True),
           "consent": fields.Boolean(load_default=False)}
    for i in range(form_id % 5 + 3):
        out[f"q{i}"] = fields.String(validate=marshmallow.validate.Length(max=200))
    return out


@functools.lru_cache(maxsize=64)
def schema_for(form_id: int) -> Schema:
    cls = type(f"Form{form_id}Schema", (FormBase,), form_fields(form_id))
    return cls()


def submit(form_id: int, answers: dict) -> dict:
    return schema_for(form_id).load(answers)


def workload():
    form_id = next(_seq)
    submit(form_id, {"email": f"user{form_id}@example.com", "name": "Ada", "consent": True,
                     **{f"q{i}": f"answer {i}" for i in range(form_id % 5 + 3)}})


TARGETS = [sys.modules[__name__], marshmallow.schema, marshmallow.class_registry, Schema]
EXPECT = {"verdict": ["plateau", "inconclusive", "clean"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 400, "checkpoints": 16}
