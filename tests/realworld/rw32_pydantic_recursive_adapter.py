"""An order service that validates each request's payload with a ``TypeAdapter`` built per call,
for a model whose items nest (a recursive model: an order line has sub-lines).

Real native leak in pydantic-core 2.14.5 (pydantic 2.5.2; pydantic issue #8397, fixed in
pydantic-core 2.14.6 / pydantic 2.5.3): building the validator and the serializer of a schema with
recursive definitions leaves their Rust-side definitions alive (a reference cycle of ``Arc``s the
Rust code never breaks), ~7.6 KB of malloc'd memory per ``TypeAdapter`` here, with the Python heap
flat. The memory is allocated by the C calls that build them: ``SchemaValidator(...)`` in
``pydantic.plugin._schema_validator.create_schema_validator`` and ``SchemaSerializer(...)`` in
``TypeAdapter.__init__``; the schema generation around them (``_get_schema``, ``clean_schema``)
allocates no native memory that stays.
"""
import sys

import pydantic
import pydantic._internal._generate_schema
import pydantic.plugin._schema_validator
import pydantic.type_adapter
from pydantic import BaseModel, TypeAdapter


class Sku(BaseModel):
    code: str = "x"


class Line(BaseModel):
    sku: Sku
    lines: list["Line"]


def validate_order(payload: list) -> list:
    return TypeAdapter(list[Line]).validate_python(payload)


def workload():
    validate_order([{"sku": {"code": "a1"}, "lines": []}])


ADAPTER = TypeAdapter(list[Line])


def workload_fixed():
    ADAPTER.validate_python([{"sku": {"code": "a1"}, "lines": []}])  # one adapter, built once


TARGETS = [sys.modules[__name__], pydantic.type_adapter, pydantic.plugin._schema_validator,
           pydantic._internal._generate_schema]
EXPECT = {"verdict": ["leak"], "culprit": ["TypeAdapter.__init__", "create_schema_validator"], "root": [],
          "says": ["native", "outside python"]}
TRUTH = {"kind": "native", "calls": 300, "min_bytes_per_call": 3000}
FIXED_RELEASE = "pydantic==2.5.3 pydantic-core==2.14.6"
