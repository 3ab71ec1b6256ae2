"""OTLP/JSON bodies onto an ``ExportTraceServiceRequest`` without ``json_format``.

``google.protobuf.json_format.ParseDict`` walks every field of every message through
descriptors and checks in Python, about 100 µs per span of a GenAI span. ``fill`` sets the
message's fields directly, driven by tables built once from the same descriptors, for the
JSON that OTLP exporters write: ids in hex, lowerCamelCase or snake_case names, integers as
numbers or decimal strings, enums as numbers or names.

It accepts only what ``ParseDict`` would turn into the same message: anything else (a null,
a field it does not know, a field given twice in both spellings, a number in another form,
bytes values, an id that is not hex digits only (``bytes.fromhex`` would skip whitespace), a
value out of range, messages nested deeper than
json_format's limit of 100) raises ``Unsupported`` and the
caller parses the body the general way, which also writes the error messages. So the fast
path never changes what a body means, only what it costs.
"""

from __future__ import annotations

from typing import Any

# What a field's JSON value becomes (the kinds of the tables below)
_STR, _INT, _BOOL, _DOUBLE, _ENUM, _ID, _ATTRS, _MSG, _LIST = range(9)
_ID_FIELDS = {
    "opentelemetry.proto.trace.v1.Span": {"trace_id", "span_id", "parent_span_id"},
    "opentelemetry.proto.trace.v1.Span.Link": {"trace_id", "span_id"},
}
_KEY_VALUE = "opentelemetry.proto.common.v1.KeyValue"
# json_format's max_recursion_depth: it refuses a message nested deeper (the request is depth 1),
# as upb refuses a protobuf body nested deeper; so does the fast path
_MAX_DEPTH = 100


class Unsupported(Exception):
    """The fast path does not take this body: parse it with ``json_format``."""


_Table = dict[str, tuple[str, int, Any]]
_TABLES: dict[str, _Table] = {}


def _table(desc: Any) -> _Table:
    """JSON key (``json_name`` and field name) -> (field name, kind, detail) of a message."""
    found = _TABLES.get(desc.full_name)
    if found is not None:
        return found
    table: _Table = {}
    _TABLES[desc.full_name] = table  # (before the fields: messages may nest themselves)
    from google.protobuf.descriptor import FieldDescriptor as F

    ids = _ID_FIELDS.get(desc.full_name, set())
    for f in desc.fields:
        repeated = f.label == F.LABEL_REPEATED
        entry: tuple[str, int, Any] | None = None
        if f.cpp_type == F.CPPTYPE_MESSAGE:
            if repeated and f.message_type.full_name == _KEY_VALUE:
                entry = (f.name, _ATTRS, None)
            elif f.message_type.GetOptions().map_entry:
                entry = None
            else:
                entry = (f.name, _LIST if repeated else _MSG, _table(f.message_type))
        elif repeated:
            entry = None  # repeated scalars: none in OTLP traces
        elif f.type == F.TYPE_BYTES:
            entry = (f.name, _ID, None) if f.name in ids else None
        elif f.cpp_type == F.CPPTYPE_STRING:
            entry = (f.name, _STR, None)
        elif f.cpp_type in (F.CPPTYPE_INT32, F.CPPTYPE_INT64, F.CPPTYPE_UINT32, F.CPPTYPE_UINT64):
            entry = (f.name, _INT, None)
        elif f.cpp_type == F.CPPTYPE_BOOL:
            entry = (f.name, _BOOL, None)
        elif f.cpp_type == F.CPPTYPE_DOUBLE:
            entry = (f.name, _DOUBLE, None)
        elif f.cpp_type == F.CPPTYPE_ENUM:
            entry = (f.name, _ENUM, {v.name: v.number for v in f.enum_type.values})
        if entry is not None and f.containing_oneof is None:
            table[f.json_name] = entry
            table[f.name] = entry
    return table


def fill(message: Any, doc: Any) -> None:
    """Set ``message`` (an empty ``ExportTraceServiceRequest``) from a decoded OTLP/JSON
    document. Raises ``Unsupported`` (the message then half-filled: discard it)."""
    try:
        _fill(message, doc, _table(message.DESCRIPTOR), 1)
    except Unsupported:
        raise
    except Exception as exc:
        # a value upb refuses (out of range, not UTF-8), nesting too deep: json_format
        # says what is wrong
        raise Unsupported(str(exc)) from exc


def _fill(message: Any, obj: Any, table: _Table, depth: int) -> None:
    """``depth``: ``message``'s, counted as json_format counts it (the request is 1)."""
    if type(obj) is not dict:
        raise Unsupported("not an object")
    if depth > _MAX_DEPTH:
        raise Unsupported("too deep")
    names = set()
    for key, value in obj.items():
        entry = table.get(key)
        if entry is None or value is None:
            raise Unsupported(key)
        name, kind, detail = entry
        names.add(name)
        if kind == _STR:
            if type(value) is not str:
                raise Unsupported(key)
            setattr(message, name, value)
        elif kind == _INT:
            setattr(message, name, _int(value))
        elif kind == _ID:
            if type(value) is not str:
                raise Unsupported(key)
            raw = bytes.fromhex(value)
            if len(raw) << 1 != len(value):  # fromhex skips whitespace: OTLP/JSON does not
                raise Unsupported(key)
            setattr(message, name, raw)
        elif kind == _ATTRS:
            _attributes(getattr(message, name), value, depth + 1)
        elif kind == _LIST:
            if type(value) is not list:
                raise Unsupported(key)
            add = getattr(message, name).add
            for item in value:
                _fill(add(), item, detail, depth + 1)
        elif kind == _MSG:
            sub = getattr(message, name)
            sub.SetInParent()
            _fill(sub, value, detail, depth + 1)
        elif kind == _ENUM:
            if type(value) is str:
                number = detail.get(value)
                if number is None:
                    raise Unsupported(key)
                setattr(message, name, number)
            else:
                setattr(message, name, _int(value))
        elif kind == _BOOL:
            if type(value) is not bool:
                raise Unsupported(key)
            setattr(message, name, value)
        elif kind == _DOUBLE:
            setattr(message, name, _double(value))
        else:  # pragma: no cover - every kind is handled above
            raise Unsupported(key)
    if len(names) != len(obj):
        raise Unsupported("a field in both spellings")


def _int(value: Any) -> int:
    if type(value) is int:
        return value
    # decimal digits (ASCII), an optional minus
    if (
        type(value) is str
        and value.isascii()
        and (value.isdigit() or (value[:1] == "-" and value[1:].isdigit()))
    ):
        return int(value)
    raise Unsupported("integer")


def _double(value: Any) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    raise Unsupported("double")


_STRING_KEYS = ("stringValue", "string_value")


def _attributes(repeated: Any, items: Any, depth: int) -> None:
    """``KeyValue`` items: ``{"key": ..., "value": {one AnyValue member}}`` each, at
    ``depth`` (their values one deeper)."""
    if type(items) is not list:
        raise Unsupported("attributes")
    if items and depth > _MAX_DEPTH:
        raise Unsupported("too deep")
    add = repeated.add
    for item in items:
        if type(item) is not dict or len(item) != 2:
            raise Unsupported("attribute")
        key = item.get("key")
        value = item.get("value")
        if type(key) is not str or type(value) is not dict or len(value) != 1:
            raise Unsupported("attribute")
        kv = add()
        kv.key = key
        text = value.get("stringValue")
        if type(text) is str and depth < _MAX_DEPTH:  # (most attributes: inline)
            kv.value.string_value = text
        else:
            _any_value(kv.value, value, depth + 1)


def _any_value(target: Any, value: dict[str, Any], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise Unsupported("too deep")
    ((member, v),) = value.items()
    if member in _STRING_KEYS:
        if type(v) is not str:
            raise Unsupported(member)
        target.string_value = v
    elif member == "intValue" or member == "int_value":
        target.int_value = _int(v)
    elif member == "doubleValue" or member == "double_value":
        target.double_value = _double(v)
    elif member == "boolValue" or member == "bool_value":
        if type(v) is not bool:
            raise Unsupported(member)
        target.bool_value = v
    elif member == "arrayValue" or member == "array_value":
        if depth + 1 > _MAX_DEPTH:
            raise Unsupported("too deep")
        arr = target.array_value
        arr.SetInParent()
        items = _values_of(v)
        add = arr.values.add
        for item in items:
            if type(item) is not dict or len(item) != 1:
                raise Unsupported("array item")
            _any_value(add(), item, depth + 2)
    elif member == "kvlistValue" or member == "kvlist_value":
        if depth + 1 > _MAX_DEPTH:
            raise Unsupported("too deep")
        kvs = target.kvlist_value
        kvs.SetInParent()
        _attributes(kvs.values, _values_of(v), depth + 2)
    else:  # bytesValue (base64), or not a member
        raise Unsupported(member)


def _values_of(v: Any) -> list[Any]:
    if type(v) is not dict or len(v) > 1:
        raise Unsupported("values")
    items = v.get("values", [])
    if type(items) is not list or (v and "values" not in v):
        raise Unsupported("values")
    return items
