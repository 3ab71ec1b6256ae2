"""OTLP ``AnyValue`` <-> Python values. Payloads are encoded by ``flightlog.payload``, the one
encoder of every front door."""

from __future__ import annotations

from typing import Any

import orjson

# A captured input/output larger than this is stored as a truncation marker (see
# ``flightlog.model.Payload``). Non-payload attribute values larger than
# ``MAX_ATTRIBUTE_BYTES`` make their span invalid (rejected with a message).
PAYLOAD_CAP = 1 << 20
MAX_ATTRIBUTE_BYTES = 1 << 20


def any_value_to_python(value: Any) -> Any:
    """An ``opentelemetry.proto.common.v1.AnyValue`` as a JSON-compatible Python value.

    Bytes become lowercase hex text; an unset value becomes ``None``.
    """
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return value.bool_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "bytes_value":
        return value.bytes_value.hex()
    if which == "array_value":
        return [any_value_to_python(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value_to_python(kv.value) for kv in value.kvlist_value.values}
    return None  # pragma: no cover - a future AnyValue member


def set_any_value(target: Any, value: Any) -> None:
    """Fill the ``AnyValue`` message ``target`` from a Python value."""
    if value is None:
        return
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        if -(1 << 63) <= value < (1 << 63):
            target.int_value = value
        else:
            target.string_value = str(value)
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, (bytes, bytearray)):
        target.bytes_value = bytes(value)
    elif isinstance(value, (list, tuple)):
        arr = target.array_value
        arr.SetInParent()
        for item in value:
            set_any_value(arr.values.add(), item)
    elif isinstance(value, dict):
        kv = target.kvlist_value
        kv.SetInParent()
        for k, v in value.items():
            entry = kv.values.add()
            entry.key = str(k)
            set_any_value(entry.value, v)
    else:
        target.string_value = repr(value)


def approx_size(value: Any) -> int:
    """Bytes a Python attribute value takes, roughly (strings by UTF-8 length)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(approx_size(v) for v in value)
    if isinstance(value, dict):
        return sum(len(str(k)) + approx_size(v) for k, v in value.items())
    return 8


def parse_maybe_json(text: str, mime: str | None = None) -> Any:
    """``text`` parsed as JSON when it looks like JSON (or says so), else the text itself."""
    stripped = text.lstrip()
    looks_json = bool(stripped) and stripped[0] in '{["'
    if (mime and "json" in mime) or looks_json:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:  # also raised for nesting deeper than orjson allows
            return text
    return text
