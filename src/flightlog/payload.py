"""Captured values: canonical JSON bytes, addressed by SHA-256, safe for any Python value.

The one payload encoder behind every front door: the SDK (on the caller's thread and in its
writer), OTLP ingestion, the remote SDK (which sends what the SDK encoded) and
``flightlog import``: the same value gets the same bytes and the same hash whichever way it
arrived.

``encode(value)`` never raises. JSON values are encoded as compact JSON with sorted keys
(orjson). What JSON cannot hold is recorded with a typed marker, so the record says what the
value was without evaluating anything risky:

=========================  ==========================================================
value                      recorded as
=========================  ==========================================================
bytes / bytearray          ``{"$bytes": "<base64 of at most 4 KiB>", "size": n}``
integers beyond 64 bits    ``{"$int": "<decimal digits>"}``
set / frozenset            ``{"$set": [...]}`` (elements sorted by their JSON)
generator, iterator, coro  ``{"$type": "generator", "$repr": "<repr>"}`` (never consumed)
cycles                     ``{"$cycle": "<type name>"}`` where the value recurs
nesting beyond 64 levels   ``{"$depth": "<type name>"}``
other objects              ``{"$type": "module.Class", "$repr": "<repr, at most 1 KiB>"}``
a ``__repr__`` that raises ``{"$type": ..., "$repr": "<unrepresentable ...>"}``
strings with lone          encoded with the surrogates replaced by U+FFFD
surrogates
=========================  ==========================================================

Dataclasses, dates, UUIDs and enums are encoded by orjson natively; objects with a
``model_dump()`` (pydantic) are encoded as their dump. NaN and infinities become ``null``
(orjson's behaviour, as JSON has no spelling for them).

A value whose JSON is larger than the cap (default 256 KiB) is stored as
``{"$truncated": true, "size": <full size>, "sha256": <hash of the full JSON>,
"preview": "<the first cap bytes of the JSON, as text>"}``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import inspect
import types
from collections.abc import Iterator
from typing import Any

import orjson

from flightlog.model import Payload

DEFAULT_CAP = 256 * 1024
MAX_DEPTH = 64
MAX_REPR = 1024
MAX_BYTES_PREVIEW = 4096

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def safe_repr(value: Any, limit: int = MAX_REPR) -> str:
    """``repr(value)`` cut to ``limit`` characters; never raises."""
    try:
        text = repr(value)
    except Exception as exc:  # a __repr__ that raises
        return f"<unrepresentable {type_name(value)}: {type(exc).__name__}>"
    if not isinstance(text, str):
        return f"<unrepresentable {type_name(value)}>"
    if len(text) > limit:
        return text[:limit] + "…"
    return text


def type_name(value: Any) -> str:
    t = type(value)
    module = getattr(t, "__module__", "") or ""
    if module == "builtins":
        return str(t.__qualname__)
    return f"{module}.{t.__qualname__}"


def _marker(value: Any) -> Any:
    """The JSON form of a value orjson does not encode natively."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return {
            "$bytes": base64.b64encode(raw[:MAX_BYTES_PREVIEW]).decode(),
            "size": len(raw),
        }
    if isinstance(value, int):  # beyond 64 bits (bool and small ints are native)
        return {"$int": str(value)}
    if isinstance(value, (set, frozenset)):
        items = sorted(encode_value(v) for v in value)
        return {"$set": [orjson.loads(b) for b in items]}
    if isinstance(value, (types.GeneratorType, types.AsyncGeneratorType, types.CoroutineType)) or (
        isinstance(value, Iterator) and not isinstance(value, (str, bytes, dict, list, tuple))
    ):
        return {
            "$type": "generator" if inspect.isgenerator(value) else type_name(value),
            "$repr": safe_repr(value),
        }
    dump = getattr(type(value), "model_dump", None)
    if callable(dump):
        try:
            return dump(value)
        except Exception:
            pass
    return {"$type": type_name(value), "$repr": safe_repr(value)}


def _default(value: Any) -> Any:
    try:
        return _marker(value)
    except Exception:
        return {"$type": type_name(value), "$repr": "<unrepresentable>"}


def _walk(value: Any, depth: int, path: set[int]) -> Any:
    """Slow path: make any value JSON-safe, handling cycles, depth and odd keys."""
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else {"$int": str(value)}
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
    if depth >= MAX_DEPTH:
        return {"$depth": type_name(value)}
    vid = id(value)
    if vid in path:
        return {"$cycle": type_name(value)}
    if isinstance(value, dict):
        path.add(vid)
        try:
            out: dict[str, Any] = {}
            for k, v in list(value.items()):
                key = k if isinstance(k, str) else safe_repr(k, 200)
                out[_walk(key, depth + 1, path)] = _walk(v, depth + 1, path)
            return out
        finally:
            path.discard(vid)
    if isinstance(value, (list, tuple)):
        path.add(vid)
        try:
            return [_walk(v, depth + 1, path) for v in list(value)]
        finally:
            path.discard(vid)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        path.add(vid)
        try:
            return {
                f.name: _walk(getattr(value, f.name, None), depth + 1, path)
                for f in dataclasses.fields(value)
            }
        finally:
            path.discard(vid)
    try:
        # Native scalars orjson knows (datetime, UUID, enum, numpy scalars ...).
        orjson.loads(orjson.dumps(value, option=_OPTS))
        return orjson.loads(orjson.dumps(value, option=_OPTS))
    except Exception:
        pass
    try:
        marked = _marker(value)
    except Exception:
        return {"$type": type_name(value), "$repr": "<unrepresentable>"}
    if marked is value:
        return {"$type": type_name(value), "$repr": safe_repr(value)}
    path.add(vid)
    try:
        return _walk(marked, depth + 1, path)
    finally:
        path.discard(vid)


def encode_value(value: Any) -> bytes:
    """Canonical JSON bytes of any value (see the module docstring). Never raises."""
    try:
        return orjson.dumps(value, option=_OPTS, default=_default)
    except Exception:
        pass
    try:
        return orjson.dumps(_walk(value, 0, set()), option=_OPTS)
    except Exception:
        return orjson.dumps({"$type": type_name(value), "$repr": "<unencodable>"})


def digest(data: bytes) -> str:
    """Hex SHA-256 of bytes: a payload's address."""
    return hashlib.sha256(data).hexdigest()


_MARKER_PREFIX = b'{"$truncated":true,'


def make_payload(data: bytes, cap: int = DEFAULT_CAP) -> Payload:
    """A ``Payload`` for encoded bytes, truncated with a marker when over ``cap``.

    Idempotent: bytes that already are a truncation marker (the recorder caps values on the
    caller's side) are stored as they are, keeping the full value's size.
    """
    if data.startswith(_MARKER_PREFIX):
        try:
            marker = orjson.loads(data)
            return Payload(hash=digest(data), data=data, size=int(marker["size"]), truncated=True)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            pass
    size = len(data)
    if size <= cap:
        return Payload(hash=digest(data), data=data, size=size, truncated=False)
    # The preview leaves room for the marker's other fields, so the marker fits the cap.
    preview = data[: max(0, cap - 256)].decode("utf-8", "ignore")
    marker_bytes = orjson.dumps(
        {"$truncated": True, "size": size, "sha256": digest(data), "preview": preview},
        option=orjson.OPT_SORT_KEYS,
    )
    return Payload(hash=digest(marker_bytes), data=marker_bytes, size=size, truncated=True)


def payload_of(value: Any, cap: int = DEFAULT_CAP) -> Payload:
    """The ``Payload`` of a value: ``make_payload(encode_value(value), cap)``."""
    return make_payload(encode_value(value), cap)


def decode(data: bytes | None) -> Any:
    """Parse stored payload bytes back into Python (markers stay as dicts)."""
    if data is None:
        return None
    return orjson.loads(data)
