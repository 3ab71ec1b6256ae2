"""The decoder's fast paths answer as the plain ones: attribute values of every kind, the
size check skipped only when nothing can be over the limit, payloads addressed once per
distinct text in a request, and payload bytes kept compact while the batch waits."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flightlog.otel import _values
from flightlog.otel.decode import request_to_batch
from flightlog.payload import encode_value, payload_of

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")


def _request(*spans: tuple[str, dict[str, Any]]) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for n, (name, attrs) in enumerate(spans, 1):
        span = ss.spans.add()
        span.trace_id = TRACE
        span.span_id = n.to_bytes(8, "big")
        if n > 1:
            span.parent_span_id = (1).to_bytes(8, "big")
        span.name = name
        span.start_time_unix_nano = 1_700_000_000_000_000_000 + n
        span.end_time_unix_nano = 1_700_000_000_000_000_100 + n
        for key, value in attrs.items():
            kv = span.attributes.add()
            kv.key = key
            _values.set_any_value(kv.value, value)
    return req


def test_attribute_values_of_every_kind() -> None:
    attrs = {
        "s": "text",
        "i": -(1 << 62),
        "d": 0.25,
        "b": True,
        "f": False,
        "z": 0,
        "arr": [1, "two", [3.5]],
        "kv": {"k": "v", "n": 2},
        "raw": b"\x00\xff",
    }
    result = request_to_batch(_request(("root", attrs)), infer_edges=False)
    assert result.rejected_spans == 0
    got = result.batch.steps[0].attributes
    want = {**attrs, "raw": "00ff"}
    assert {k: got[k] for k in want} == want
    assert type(got["b"]) is bool and type(got["z"]) is int and type(got["d"]) is float


def test_oversized_attributes_are_still_rejected() -> None:
    limit = _values.MAX_ATTRIBUTE_BYTES
    for big in ("x" * (limit + 1), ["x" * 1000] * (limit // 1000 + 1), b"\x01" * (limit // 2 + 1)):
        result = request_to_batch(_request(("root", {"big": big})), infer_edges=False)
        assert result.rejected_spans == 1 and "attribute 'big'" in result.errors[0], big[:1]
    # a payload key may be large (stored truncated); a value at the limit is fine
    fine = {"input.value": "y" * (limit + 1), "note": "z" * limit}
    result = request_to_batch(_request(("root", fine)), infer_edges=False)
    assert result.rejected_spans == 0 and result.accepted_spans == 1


def test_payloads_repeated_in_a_request_are_addressed_as_each_alone() -> None:
    doc = '{"query": "policy P-1 water damage", "k": [2, 1]}'
    spans = [
        ("root", {"input.value": doc, "output.value": "plain text"}),
        ("a", {"input.value": "42", "output.value": doc}),  # text: it does not look like JSON
        ("b", {"input.value": "42", "input.mime_type": "application/json"}),  # ... but says so
        ("c", {"gen_ai.tool.call.arguments": doc, "output.value": "plain text"}),
        ("d", {"input.value": "[1, 2", "input.mime_type": "application/json"}),  # not JSON
    ]
    together = request_to_batch(_request(*spans), infer_edges=False)
    for step in together.batch.steps:
        name = step.name
        alone = request_to_batch(_request(*[s for s in spans if s[0] == name]), infer_edges=False)
        assert (step.input_hash, step.output_hash) == (
            alone.batch.steps[0].input_hash,
            alone.batch.steps[0].output_hash,
        ), name
    parsed = payload_of(orjson.loads(doc)).hash
    steps = {st.name: st for st in together.batch.steps}
    assert steps["root"].input_hash == steps["c"].input_hash == parsed
    assert steps["a"].output_hash == parsed
    assert steps["a"].input_hash == payload_of("42").hash
    assert steps["b"].input_hash == payload_of(42).hash
    assert steps["d"].input_hash == payload_of("[1, 2").hash
    stored = {p.hash: p for p in together.batch.payloads}
    assert stored[parsed].data == encode_value(orjson.loads(doc))
    assert len(stored) == len(together.batch.payloads)


def test_payload_bytes_are_compact() -> None:
    """orjson's bytes keep its whole output buffer (4 KB and more): the payloads a batch
    holds while it waits in the ingestion queue must be copies of their own size."""
    spans = [
        (f"s{n}", {"input.value": f'{{"n": {n}}}', "output.value": f"out {n}"}) for n in range(200)
    ]
    req = _request(*spans)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = request_to_batch(req, infer_edges=False)
        datas = [p.data for p in result.batch.payloads]
        del result
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(datas) == 400
    assert held / len(datas) < 300, held / len(datas)  # bytes per payload held


def test_empty_and_unset_attribute_values() -> None:
    """A string attribute that is empty is "" (read by the oneof, not the text-first read), an
    AnyValue with nothing set is None, in spans, resources and events alike."""
    req = _request(("root", {"empty": "", "text": "x", "zero": 0, "no": False}))
    span = req.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add().key = "unset"  # a KeyValue with no value at all
    res_kv = req.resource_spans[0].resource.attributes.add()
    res_kv.key, res_kv.value.string_value = "service.name", ""
    ev = span.events.add()
    ev.name = "note"
    ev_kv = ev.attributes.add()
    ev_kv.key, ev_kv.value.string_value = "e", ""
    result = request_to_batch(req, infer_edges=False)
    step = result.batch.steps[0]
    got = step.attributes
    assert got["empty"] == "" and got["text"] == "x" and got["unset"] is None
    assert got["zero"] == 0 and type(got["zero"]) is int and got["no"] is False
    assert got["otel.events"][0]["attributes"] == {"e": ""}
    assert result.batch.runs[0].attributes["service.name"] == ""


def test_unflatten_known_keys_as_the_loop() -> None:
    """Keys already known to hold no index segment take a copy; the result is the loop's,
    keys in the same order, the skipped ones left out, indexed keys still folded."""
    from flightlog.otel import decode

    skip = frozenset({"input.value", "gen_ai.input.messages"})
    plain = {"a.b": 1, "input.value": "x", "c": [2], "gen_ai.input.messages": "y", "d.e": None}
    first = decode.unflatten(plain, skip)  # learns the keys
    assert set(plain) <= decode._NOT_INDEXED
    again = decode.unflatten(plain, skip)  # the copy
    want = {"a.b": 1, "c": [2], "d.e": None}
    assert first == again == want and list(again) == list(want)
    assert again is not plain and again["c"] is plain["c"]
    assert decode.unflatten(plain) == plain and list(decode.unflatten(plain)) == list(plain)
    mixed = {"a.b": 1, "llm.input_messages.0.message.role": "user", "c": 2}
    out = decode.unflatten(mixed, skip)
    assert out == {"a.b": 1, "llm.input_messages": [{"message.role": "user"}], "c": 2}


def test_payloads_built_without_init_equal_the_dataclass() -> None:
    """The decoder's payloads (slots set directly) are the frozen dataclass's: equal, same
    hash, still frozen; texts declared JSON, looking like JSON, or neither."""
    import dataclasses

    import pytest

    from flightlog.model import Payload
    from flightlog.otel.decode import _new_payload

    p = _new_payload("ab", b"{}")
    assert p == Payload("ab", b"{}", 2, False) and hash(p) == hash(Payload("ab", b"{}", 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.size = 3  # type: ignore[misc]
    texts = {
        "input.value": ' {"b": 1, "a": [2]}',
        "input.mime_type": "application/json",
        "output.value": "not json {",
    }
    result = request_to_batch(_request(("root", texts)), infer_edges=False)
    step = result.batch.steps[0]
    stored = {p.hash: p for p in result.batch.payloads}
    assert stored[step.input_hash] == payload_of({"b": 1, "a": [2]}, _values.PAYLOAD_CAP)
    assert stored[step.output_hash] == payload_of("not json {", _values.PAYLOAD_CAP)
    declared = {"input.value": "12", "input.mime_type": "text/json", "output.value": "12"}
    result = request_to_batch(_request(("root", declared)), infer_edges=False)
    step = result.batch.steps[0]
    stored = {p.hash: p for p in result.batch.payloads}
    assert stored[step.input_hash].data == b"12" and stored[step.output_hash].data == b'"12"'
