"""OTLP/JSON bodies take a fast path (``otel/_json_request.py``) that must build exactly the
message ``json_format.ParseDict`` builds, or step aside: on every recorded framework
fixture, and on fixtures mutated at random (nulls, unknown and doubled fields, numbers and
enums in every spelling, bad ids, bytes values), either both agree or the fast path says
``Unsupported`` and the body is parsed the general way, with its error messages."""

from __future__ import annotations

import copy
import json
import pickle
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flightlog.errors import InputError
from flightlog.otel import _json_request
from flightlog.otel.decode import _hex_ids_to_base64, parse_request

DATA = Path(__file__).resolve().parents[3] / "tests" / "data" / "otlp"


def _fixtures() -> list[Path]:
    return sorted(p for p in DATA.glob("*/*.json") if p.name != "decoded.json")


def _copy(doc: Any) -> Any:
    """A deep copy of a JSON document (``copy.deepcopy``'s result, ~10x faster: pickle
    copies dicts, lists and scalars in C)."""
    return pickle.loads(pickle.dumps(doc, pickle.HIGHEST_PROTOCOL))


def _general(doc: Any) -> ExportTraceServiceRequest | None:
    """What parse_request made of a document before the fast path (None: an error)."""
    doc = _copy(doc)
    req = ExportTraceServiceRequest()
    try:
        _hex_ids_to_base64(doc)
        json_format.ParseDict(doc, req, ignore_unknown_fields=True)
    except Exception:
        return None
    return req


def _fast(doc: Any) -> ExportTraceServiceRequest | None:
    req = ExportTraceServiceRequest()
    try:
        _json_request.fill(req, doc)
    except _json_request.Unsupported:
        return None
    return req


def _same(a: ExportTraceServiceRequest, b: ExportTraceServiceRequest) -> bool:
    return a == b and a.SerializeToString(deterministic=True) == b.SerializeToString(
        deterministic=True
    )


def test_every_fixture_takes_the_fast_path_to_the_same_message() -> None:
    fixtures = _fixtures()
    assert len(fixtures) > 20
    for path in fixtures:
        doc = orjson.loads(path.read_bytes())
        fast, general = _fast(doc), _general(doc)
        assert fast is not None, path
        assert general is not None and _same(fast, general), path


_SPELLINGS: list[Any] = [
    None,
    "",
    "x",
    "12",
    "-3",
    "+4",
    " 5",
    "1_000",
    "0x10",
    "zz",
    "SPAN_KIND_SERVER",
    "STATUS_CODE_ERROR",
    "NaN",
    0,
    1,
    -1,
    2**64,
    3.0,
    2.5,
    True,
    False,
    [],
    {},
    {"values": []},
    {"stringValue": "s"},
    {"intValue": "7"},
    {"bytesValue": "AAE="},
    {"boolValue": 1},
    {"doubleValue": 1},
    {"stringValue": "s", "intValue": 1},
    "5b8efff798038103d269b633813fc60c",
    "eee19b7ec3c1b174",
    "EEE19B7EC3C1B174",
    "eee19b7ec3c1b17",
]


def _positions(node: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in list(items):
        out.append((node, key))
        if isinstance(value, (dict, list)):
            _positions(value, out)
    return out


def _mutate(obj: Any, rng: random.Random) -> None:
    """One change somewhere in ``obj``: a value respelled, a key added, renamed or doubled."""
    positions = _positions(obj, [])
    if not positions:
        return
    parent, key = rng.choice(positions)
    pick = rng.random()
    if pick < 0.6 or not isinstance(parent, dict):
        parent[key] = copy.deepcopy(rng.choice(_SPELLINGS))
    elif pick < 0.75:
        parent[rng.choice(["unknownField", "trace_state", "droppedAttributesCount", "kind"])] = (
            copy.deepcopy(rng.choice(_SPELLINGS))
        )
    elif pick < 0.9:  # the same field in its other spelling
        snake = "".join("_" + c.lower() if c.isupper() else c for c in key)
        parent[snake if snake != key else key + "x"] = copy.deepcopy(parent[key])
    else:
        del parent[key]


def test_mutated_fixtures_agree_or_take_the_general_path() -> None:
    rng = random.Random(23)
    docs = [orjson.loads(p.read_bytes()) for p in _fixtures()]
    docs = [d for d in docs if len(orjson.dumps(d)) < 20_000]
    fast_taken = general_taken = 0
    for _ in range(3000):
        doc = _copy(rng.choice(docs))
        for _ in range(rng.choice((1, 1, 2))):
            _mutate(doc, rng)
        fast, general = _fast(doc), _general(doc)
        if fast is None:
            general_taken += 1
            continue
        fast_taken += 1
        assert general is not None, doc  # the fast path took what json_format refuses
        assert _same(fast, general), doc
    assert fast_taken > 200 and general_taken > 200, (fast_taken, general_taken)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "hex"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}', "OTLP/JSON"),
        (b'{"resourceSpans": {"a": 1}}', "OTLP/JSON"),
    ],
)
def test_bodies_the_fast_path_refuses_keep_their_error_messages(body: bytes, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        parse_request(body, "application/json")


def test_enum_names_numbers_and_int_strings() -> None:
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "s",
        "kind": "SPAN_KIND_CLIENT",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": 1700000000000000500,
        "status": {"code": 2},
        "attributes": [
            {"key": "i", "value": {"intValue": "-12"}},
            {"key": "d", "value": {"doubleValue": 3}},
            {"key": "a", "value": {"arrayValue": {"values": [{"boolValue": True}]}}},
            {"key": "m", "value": {"kvlistValue": {}}},
        ],
    }
    doc = {"resource_spans": [{"scope_spans": [{"spans": [span]}]}]}
    fast = _fast(doc)
    general = _general(doc)
    assert fast is not None and general is not None and _same(fast, general)
    got = fast.resource_spans[0].scope_spans[0].spans[0]
    assert got.kind == 3 and got.status.code == 2 and got.end_time_unix_nano == 1700000000000000500
    assert got.attributes[3].value.HasField("kvlist_value")


def _nested_value_doc(depth: int, member: str = "arrayValue") -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "deep"}
    for _ in range(depth):
        if member == "arrayValue":
            value = {"arrayValue": {"values": [value]}}
        else:
            value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "s",
        "events": [{"name": "e", "attributes": [{"key": "n", "value": value}]}],
        "attributes": [{"key": "n", "value": value}],
    }
    return {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}


@pytest.mark.parametrize("member", ["arrayValue", "kvlistValue"])
def test_nesting_past_json_formats_depth_limit_is_refused_as_before(member: str) -> None:
    """json_format refuses messages nested deeper than 100 (as protobuf bodies are refused):
    the fast path must not accept a deeper OTLP/JSON body, and agrees up to the limit."""
    for depth in range(40, 52):
        doc = _nested_value_doc(depth, member)
        fast, general = _fast(doc), _general(doc)
        if general is None:
            assert fast is None, (member, depth)
        else:
            assert fast is not None and _same(fast, general), (member, depth)
    body = json.dumps(_nested_value_doc(70, member)).encode()  # (orjson.dumps stops at 255)
    with pytest.raises(InputError, match="too deep"):
        parse_request(body, "application/json")
