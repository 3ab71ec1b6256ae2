"""The schemas of the OpenAPI document's components.

Records (``Run``, ``Step``, ``Edge``, ``Finding``) are generated from the dataclasses of
``flightlog.model``: every field, typed from its annotation (``X | None`` nullable, a dict an
object, a nested dataclass such as ``ErrorInfo`` its own schema), required when the model gives
it no default, and the model's own constants as enumerations. A field added to a record is
served without an edit here. The reliability figures are written out (they are plain dicts).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from flightlog.model import RUN_STATUSES, Edge, Finding, Run, Step

_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _field_schema(hint: Any) -> dict[str, Any]:
    """The OpenAPI schema of a dataclass field's type: ``X | None`` is nullable, a dict an
    object, a list an array of its items' schema, a dataclass its own ``record_schema``."""
    nullable = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(hint))
        hint = args[0]
    if dataclasses.is_dataclass(hint):
        schema = record_schema(typing.cast(type, hint))
    elif typing.get_origin(hint) is list:
        schema = {"type": "array", "items": _field_schema(typing.get_args(hint)[0])}
    elif typing.get_origin(hint) is dict:
        schema = {"type": "object"}
    else:
        schema = {"type": _TYPES[hint]}
    if nullable:
        schema["nullable"] = True
    return schema


def record_schema(
    record: type,
    required: Iterable[str] | None = None,
    enums: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, Any]:
    """The OpenAPI schema of a record of ``flightlog.model`` (its ``to_dict`` form): every
    field, typed from the dataclass; ``enums`` names the allowed values of some fields;
    ``required`` defaults to the fields without a default and the enumerated ones."""
    hints = typing.get_type_hints(record)
    fields = dataclasses.fields(record)
    props = {f.name: _field_schema(hints[f.name]) for f in fields}
    for name, values in (enums or {}).items():
        props[name]["enum"] = list(values)
    if required is None:
        required = [
            f.name
            for f in fields
            if f.name in (enums or {})
            or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        ]
    schema: dict[str, Any] = {"type": "object"}
    if required:
        schema["required"] = list(required)
    schema["properties"] = props
    return schema


# The records the API serves, and the fields whose values the model enumerates. Only those
# every stored record keeps to: a step's kind or status comes from whatever a span said.
RECORDS: tuple[type, ...] = (Run, Step, Edge, Finding)
ENUMS: dict[type, dict[str, tuple[str, ...]]] = {Run: {"status": RUN_STATUSES}}


def record_schemas() -> dict[str, dict[str, Any]]:
    """The component schemas of the records, by record name."""
    return {r.__name__: record_schema(r, enums=ENUMS.get(r)) for r in RECORDS}


def attribution_schema() -> dict[str, Any]:
    """``Attribution.to_dict()`` (``flightlog why --json``), generated from the dataclass like
    the records, with the ``counterfactual`` outcome ``why --confirm`` recorded, if any."""
    from flightlog.forensics.attribution import Attribution

    schema = record_schema(Attribution)
    schema["properties"]["counterfactual"] = {
        "type": "object",
        "description": "The latest counterfactual replay's outcome (flightlog why --confirm)",
    }
    return schema


def run_status(records: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The schema of a run status parameter: the ``Run`` schema's own enumeration."""
    return dict(records["Run"]["properties"]["status"])


_RATE = {
    "type": "object",
    "required": ["successes", "trials", "value", "low", "high"],
    "properties": {
        "successes": {"type": "integer"},
        "trials": {"type": "integer"},
        "value": {"type": "number", "nullable": True},
        "low": {"type": "number"},
        "high": {"type": "number"},
    },
}
RELIABILITY_SCHEMAS: dict[str, Any] = {
    "Rate": _RATE,
    "WorkflowReliability": {
        "type": "object",
        "required": ["workflow", "runs", "end_to_end", "product_of_steps", "steps"],
        "properties": {
            "workflow": {"type": "string"},
            "since_ns": {"type": "integer"},
            "until_ns": {"type": "integer"},
            "runs": {"type": "object", "additionalProperties": {"type": "integer"}},
            "end_to_end": {"$ref": "#/components/schemas/Rate"},
            "product_of_steps": {"type": "object"},
            "gap": {"type": "number", "nullable": True},
            "pass_k": {"type": "array", "items": {"type": "object"}},
            "failures_per_1000": {"type": "object"},
            "steps": {"type": "array", "items": {"type": "object"}},
            "failure_share": {"type": "object"},
            "cost": {"type": "object"},
            "days": {"type": "array", "items": {"type": "object"}},
            "notes": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Reliability": {
        "type": "object",
        "required": ["since_ns", "until_ns", "workflows"],
        "properties": {
            "since_ns": {"type": "integer"},
            "until_ns": {"type": "integer"},
            "workflows": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/WorkflowReliability"},
            },
        },
    },
}
