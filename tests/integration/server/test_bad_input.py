"""Bad input gets a 4xx with a message; the server stays up and earlier data stays intact."""

from __future__ import annotations

import gzip
import os

import httpx
import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from flightlog.app import open_store

PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}
TRACE = "5b8efff798038103d269b633813fc60c"


def _span_json(trace: str = TRACE, span: str = "eee19b7ec3c1b174", **attrs: object) -> dict:  # type: ignore[type-arg]
    return {
        "traceId": trace,
        "spanId": span,
        "name": "root",
        "kind": 1,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000001000000000",
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()],
    }


def _request_json(*spans: dict) -> bytes:  # type: ignore[type-arg]
    return orjson.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                    },
                    "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}],
                }
            ]
        }
    )


def _message(resp: httpx.Response) -> str:
    if resp.headers.get("content-type", "").startswith("application/json"):
        return str(resp.json()["message"])
    return resp.content.decode("utf-8", errors="replace")


@pytest.fixture
def seeded(server):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        resp = client.post("/v1/traces", content=_request_json(_span_json()), headers=JS)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {}
        yield client
        # After every bad request: still up, and the earlier run is intact.
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        run = client.get(f"/api/v1/runs/{TRACE}").json()
        assert run["run"]["status"] == "succeeded"
        assert [s["name"] for s in run["steps"]] == ["root"]
    assert server.alive()


def test_random_bytes(seeded: httpx.Client) -> None:
    resp = seeded.post("/v1/traces", content=os.urandom(4096) + b"\xff\xff\xff", headers=PB)
    assert resp.status_code == 400
    assert "protobuf" in _message(resp)


def test_truncated_protobuf(seeded: httpx.Client) -> None:
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = bytes.fromhex("ab" * 16)
    span.span_id = bytes.fromhex("cd" * 8)
    span.name = "x" * 200
    data = req.SerializeToString()
    resp = seeded.post("/v1/traces", content=data[: len(data) // 2], headers=PB)
    assert resp.status_code == 400
    assert "protobuf" in _message(resp)


def test_wrong_content_type(seeded: httpx.Client) -> None:
    resp = seeded.post("/v1/traces", content=b"hello", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415
    assert "application/x-protobuf" in resp.json()["message"]
    resp = seeded.post("/v1/traces", content=b"{}", headers={**JS, "Content-Encoding": "br"})
    assert resp.status_code == 415


def test_fifty_megabyte_body(seeded: httpx.Client) -> None:
    body = b"\x00" * (50 * 1024 * 1024)
    try:
        resp = seeded.post("/v1/traces", content=body, headers=PB)
    except httpx.HTTPError:  # the server may close the connection while we still send
        return
    assert resp.status_code == 413
    assert "limit" in _message(resp)


def test_gzip_bomb_and_bad_gzip(seeded: httpx.Client) -> None:
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024))  # 64 MiB inflated, ~64 KiB sent
    resp = seeded.post("/v1/traces", content=bomb, headers={**PB, "Content-Encoding": "gzip"})
    assert resp.status_code == 413
    resp = seeded.post(
        "/v1/traces", content=b"not gzip", headers={**PB, "Content-Encoding": "gzip"}
    )
    assert resp.status_code == 400 and "gzip" in _message(resp)


def test_ten_megabyte_attribute_value(seeded: httpx.Client) -> None:
    span = _span_json(trace="1" * 32, **{"huge.attribute": "x" * (10 * 1024 * 1024)})
    resp = seeded.post("/v1/traces", content=_request_json(span), headers=JS)
    assert resp.status_code == 400
    assert "huge.attribute" in resp.json()["message"]
    assert seeded.get("/api/v1/runs/" + "1" * 32).status_code == 404


def test_deeply_nested_json(seeded: httpx.Client) -> None:
    body = b'{"resourceSpans": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    resp = seeded.post("/v1/traces", content=body, headers=JS)
    assert resp.status_code == 400
    assert "JSON" in resp.json()["message"]


def test_deeply_nested_protobuf_value(seeded: httpx.Client) -> None:
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = bytes.fromhex("ab" * 16)
    span.span_id = bytes.fromhex("cd" * 8)
    kv = span.attributes.add()
    kv.key = "nested"
    value = kv.value
    for _ in range(200):
        value = value.array_value.values.add()
    value.string_value = "deep"
    resp = seeded.post("/v1/traces", content=req.SerializeToString(), headers=PB)
    assert resp.status_code == 400


def test_deeply_nested_json_value(seeded: httpx.Client) -> None:
    """The OTLP/JSON twin of the protobuf case above: refused too, nothing stored."""
    value: dict = {"stringValue": "deep"}  # type: ignore[type-arg]
    for _ in range(60):
        value = {"arrayValue": {"values": [value]}}
    span = _span_json(trace="4" * 32)
    span["attributes"] = [{"key": "nested", "value": value}]
    resp = seeded.post("/v1/traces", content=_request_json(span), headers=JS)
    assert resp.status_code == 400
    assert "too deep" in resp.json()["message"]
    assert seeded.get("/api/v1/runs/" + "4" * 32).status_code == 404


def test_invalid_utf8(seeded: httpx.Client) -> None:
    body = _request_json(_span_json(trace="2" * 32)).replace(b'"root"', b'"ro\xff\xfet"')
    resp = seeded.post("/v1/traces", content=body, headers=JS)
    assert resp.status_code == 400
    # In protobuf, a string field with invalid UTF-8.
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = bytes.fromhex("ab" * 16)
    span.span_id = bytes.fromhex("cd" * 8)
    span.name = "PLACEHOLDER"
    data = req.SerializeToString().replace(b"PLACEHOLDER", b"PLACEHOLD\xff\xfe")
    resp = seeded.post("/v1/traces", content=data, headers=PB)
    assert resp.status_code == 400


def test_wrong_length_ids(seeded: httpx.Client) -> None:
    resp = seeded.post(
        "/v1/traces", content=_request_json(_span_json(trace="abcd" * 7)), headers=JS
    )
    assert resp.status_code == 400
    assert "trace_id has 14 bytes" in resp.json()["message"]
    resp = seeded.post("/v1/traces", content=_request_json(_span_json(trace="zz" * 16)), headers=JS)
    assert resp.status_code == 400 and "hexadecimal" in resp.json()["message"]
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add()
    bad = spans.spans.add()
    bad.trace_id, bad.span_id, bad.name = bytes.fromhex("ab" * 16), b"\x01\x02\x03", "bad"
    good = spans.spans.add()
    good.trace_id, good.span_id, good.name = bytes.fromhex("3" * 32), b"\x01" * 8, "good"
    resp = seeded.post("/v1/traces", content=req.SerializeToString(), headers=PB)
    assert resp.status_code == 200  # partial success
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(resp.content)
    assert answer.partial_success.rejected_spans == 1
    assert "span_id has 3 bytes" in answer.partial_success.error_message
    assert seeded.get("/api/v1/runs/" + "3" * 32).json()["steps"][0]["name"] == "good"


@pytest.mark.parametrize("path", ["fast", "json_format"])
@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("traceId", "0af76519 16cd43dd8448eb211c80319c", "whitespace"),
        ("traceId", " 0af7651916cd43dd8448eb211c80319c", "whitespace"),
        ("spanId", "b7ad6b71\t69203331", "whitespace"),
        ("parentSpanId", "b7ad6b71\n69203331", "whitespace"),
        ("spanId", "b7ad6b7169203331 ", "whitespace"),
        ("spanId", "0xad6b7169203331", "'x'"),
        ("spanId", "b7ad6b716920333", "odd"),
        ("linkSpanId", "b7ad 6b71 6920 3331", "whitespace"),
    ],
)
def test_json_ids_are_hex_digits_only(
    seeded: httpx.Client, path: str, field: str, value: str, problem: str
) -> None:
    """OTLP/JSON ids are hex digits only: ``bytes.fromhex`` would skip the whitespace. The
    whole request is refused (400 naming the field and the problem), its honest span too."""
    honest = _span_json(trace="6" * 32, span="6" * 16)
    bad = _span_json(trace="7" * 32, span="7" * 16)
    if field == "linkSpanId":
        bad["links"] = [{"traceId": "6" * 32, "spanId": value}]
        field = "links[0].spanId"
    else:
        bad[field] = value
    if path == "json_format":
        bad["notAnOtlpField"] = 1  # the fast path declines; json_format parses the body
    resp = seeded.post("/v1/traces", content=_request_json(honest, bad), headers=JS)
    assert resp.status_code == 400, resp.text
    message = resp.json()["message"]
    assert f"spans[1].{field}" in message and problem in message, message
    for trace in ("6" * 32, "7" * 32):
        assert seeded.get("/api/v1/runs/" + trace).status_code == 404


def test_json_ids_empty_parent_and_mixed_case_hex_are_taken(seeded: httpx.Client) -> None:
    span = _span_json(trace="8A" * 16, span="8b" * 8)
    span["parentSpanId"] = ""  # a root span: OTLP/JSON allows the empty parent id
    resp = seeded.post("/v1/traces", content=_request_json(span), headers=JS)
    assert resp.status_code == 200, resp.text
    assert seeded.get("/api/v1/runs/" + "8a" * 16).status_code == 200


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_link_ids_of_the_wrong_length_reject_their_span(
    seeded: httpx.Client, encoding: str
) -> None:
    """A link whose ids are not 16 / 8 bytes rejects its span with a message (it was dropped
    or kept as it came, silently); the span beside it is stored."""
    good_trace, bad_trace = "9" * 32, "a9" * 16
    if encoding == "protobuf":
        req = ExportTraceServiceRequest()
        spans = req.resource_spans.add().scope_spans.add()
        bad = spans.spans.add()
        bad.trace_id, bad.span_id, bad.name = bytes.fromhex(bad_trace), b"\x02" * 8, "bad"
        link = bad.links.add()
        link.trace_id, link.span_id = bytes.fromhex(good_trace), b"\x01\x02\x03\x04\x05"
        good = spans.spans.add()
        good.trace_id, good.span_id, good.name = bytes.fromhex(good_trace), b"\x01" * 8, "good"
        resp = seeded.post("/v1/traces", content=req.SerializeToString(), headers=PB)
        assert resp.status_code == 200, resp.content
        answer = ExportTraceServiceResponse()
        answer.ParseFromString(resp.content)
        rejected = answer.partial_success.rejected_spans
        message = answer.partial_success.error_message
        field = "links[0].span_id has 5 bytes"
    else:
        bad = _span_json(trace=bad_trace, span="2" * 16)
        bad["links"] = [{"traceId": "ab" * 15, "spanId": "1" * 16}]
        body = _request_json(bad, _span_json(trace=good_trace, span="1" * 16))
        resp = seeded.post("/v1/traces", content=body, headers=JS)
        assert resp.status_code == 200, resp.text
        partial = resp.json()["partialSuccess"]
        rejected, message = int(partial["rejectedSpans"]), partial["errorMessage"]
        field = "links[0].trace_id has 15 bytes"
    assert rejected == 1 and field in message, message
    assert seeded.get("/api/v1/runs/" + good_trace).status_code == 200
    assert seeded.get("/api/v1/runs/" + bad_trace).status_code == 404


def test_duplicate_delivery_is_stored_once(seeded: httpx.Client, server) -> None:  # type: ignore[no-untyped-def]
    body = _request_json(
        _span_json(trace="4" * 32, span="0" * 15 + "1"),
        {
            **_span_json(trace="4" * 32, span="0" * 15 + "2"),
            "parentSpanId": "0" * 15 + "1",
            "name": "child",
        },
    )
    for _ in range(3):
        assert seeded.post("/v1/traces", content=body, headers=JS).status_code == 200
    store = open_store(server.store_url)
    with store.read() as tx:
        assert tx.fetchone("SELECT COUNT(*) FROM steps WHERE run_id = ?", ("4" * 32,))[0] == 2


def test_rest_errors_are_json(seeded: httpx.Client) -> None:
    resp = seeded.get("/api/v1/runs/ffff0000")
    assert resp.status_code == 404 and "no run" in resp.json()["error"]["message"]
    resp = seeded.get("/api/v1/runs", params={"limit": "lots"})
    assert resp.status_code == 400 and "limit" in resp.json()["error"]["message"]
    resp = seeded.get("/api/v1/nothing-here")
    assert resp.status_code == 404 and resp.json()["error"]["message"]


def test_ui_escapes_captured_content(seeded: httpx.Client) -> None:
    evil = "<script>alert(1)</script>"
    span = _span_json(trace="5" * 32, **{"input.value": evil})
    span["name"] = evil
    assert seeded.post("/v1/traces", content=_request_json(span), headers=JS).status_code == 200
    page = seeded.get("/runs/" + "5" * 32)
    assert page.status_code == 200
    assert evil not in page.text and "&lt;script&gt;" in page.text
    assert "script-src" not in page.headers["content-security-policy"]
    assert evil not in seeded.get("/").text
