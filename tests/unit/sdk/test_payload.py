"""Payload serialisation: any value is recorded safely, JSON values round-trip exactly."""

from __future__ import annotations

import base64
import hashlib
import math
from dataclasses import dataclass

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from flightlog.payload import decode, encode_value, make_payload

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@given(json_values)
def test_json_values_round_trip(value: object) -> None:
    assert decode(encode_value(value)) == value


@given(st.dictionaries(st.text(max_size=5), st.integers(), max_size=8))
def test_encoding_is_canonical_regardless_of_key_order(d: dict[str, int]) -> None:
    reordered = dict(reversed(list(d.items())))
    assert encode_value(d) == encode_value(reordered)


@given(st.binary(max_size=5000))
@settings(max_examples=50)
def test_bytes_are_marked_with_size(data: bytes) -> None:
    out = decode(encode_value(data))
    assert out["size"] == len(data)
    assert base64.b64decode(out["$bytes"]) == data[:4096]


def test_big_integers_keep_their_digits() -> None:
    n = 2**200 + 7
    assert decode(encode_value({"n": n})) == {"n": {"$int": str(n)}}


def test_cycles_are_marked_not_followed() -> None:
    a: list[object] = [1]
    a.append(a)
    out = decode(encode_value(a))
    assert out[0] == 1 and out[1] == {"$cycle": "list"}
    d: dict[str, object] = {}
    d["self"] = d
    assert decode(encode_value(d)) == {"self": {"$cycle": "dict"}}


def test_deep_nesting_is_cut_with_a_marker() -> None:
    v: list[object] = []
    cur = v
    for _ in range(500):
        nxt: list[object] = []
        cur.append(nxt)
        cur = nxt
    out = decode(encode_value(v))
    depth = 0
    while isinstance(out, list) and out:
        out = out[0]
        depth += 1
    assert isinstance(out, dict) and "$depth" in out
    assert depth <= 64


def test_generators_are_not_consumed() -> None:
    gen = (i for i in range(3))
    out = decode(encode_value(gen))
    assert out["$type"] == "generator"
    assert list(gen) == [0, 1, 2]


def test_repr_that_raises_is_recorded_safely() -> None:
    class Evil:
        def __repr__(self) -> str:
            raise RuntimeError("boom")

    out = decode(encode_value({"x": Evil()}))
    assert out["x"]["$type"].endswith("Evil")
    assert "unrepresentable" in out["x"]["$repr"]


def test_objects_get_typed_repr_and_dataclasses_fields() -> None:
    @dataclass
    class Doc:
        title: str
        score: float

    class Thing:
        def __repr__(self) -> str:
            return "Thing(7)"

    out = decode(encode_value({"doc": Doc("a", 0.5), "thing": Thing(), "s": {3, 1}}))
    assert out["doc"] == {"title": "a", "score": 0.5}
    assert out["thing"]["$repr"] == "Thing(7)"
    assert out["s"] == {"$set": [1, 3]}


def test_lone_surrogates_are_replaced() -> None:
    out = decode(encode_value({"t": "ok\ud800x"}))
    assert out["t"].startswith("ok") and out["t"].endswith("x")


def test_nan_becomes_null() -> None:
    assert decode(encode_value([math.nan])) == [None]


def test_large_values_are_truncated_with_full_size_and_hash() -> None:
    value = "x" * 300_000
    data = encode_value(value)
    p = make_payload(data, cap=256 * 1024)
    assert p.truncated and p.size == len(data)
    marker = orjson.loads(p.data)
    assert marker["$truncated"] is True
    assert marker["size"] == len(data)
    assert marker["sha256"] == hashlib.sha256(data).hexdigest()
    assert len(marker["preview"]) <= 256 * 1024
    small = make_payload(encode_value("hi"))
    assert not small.truncated and small.hash == hashlib.sha256(b'"hi"').hexdigest()
