"""OTLP/JSON details, convention mapping and inferred lineage, without a server."""

from __future__ import annotations

import orjson
import pytest

from flightlog.errors import InputError
from flightlog.lineage import infer_data_edges
from flightlog.model import Step
from flightlog.otel.decode import decode, step_kind, unflatten

TRACE = "5b8efff798038103d269b633813fc60c"


def test_otlp_json_spellings_are_all_accepted() -> None:
    """lowerCamelCase and snake_case names, enum names or integers, int64 as strings."""
    camel = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE,
                                "spanId": "eee19b7ec3c1b174",
                                "name": "root",
                                "kind": 3,
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": 1700000000000000500,
                                "status": {"code": 2, "message": "boom"},
                                "attributes": [
                                    {
                                        "key": "gen_ai.usage.input_tokens",
                                        "value": {"intValue": "12"},
                                    },
                                    {"key": "gen_ai.request.model", "value": {"stringValue": "m1"}},
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    snake = {
        "resource_spans": [
            {
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": TRACE,
                                "span_id": "eee19b7ec3c1b174",
                                "name": "root",
                                "kind": "SPAN_KIND_CLIENT",
                                "start_time_unix_nano": "1700000000000000000",
                                "end_time_unix_nano": "1700000000000000500",
                                "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
                                "attributes": [
                                    {
                                        "key": "gen_ai.usage.input_tokens",
                                        "value": {"int_value": 12},
                                    },
                                    {
                                        "key": "gen_ai.request.model",
                                        "value": {"string_value": "m1"},
                                    },
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    a = decode(orjson.dumps(camel), "application/json").batch
    b = decode(orjson.dumps(snake), "application/json; charset=utf-8").batch
    assert [s.to_dict() for s in a.steps] == [s.to_dict() for s in b.steps]
    [step] = a.steps
    assert step.id == "eee19b7ec3c1b174" and step.run_id == TRACE
    assert step.started_ns == 1700000000000000000 and step.ended_ns == 1700000000000000500
    assert step.input_tokens == 12 and step.model == "m1" and step.kind == "llm"
    assert step.status == "error" and step.attributes["otel.span_kind"] == "client"
    assert a.runs[0].status == "failed" and a.runs[0].reason == "boom"


@pytest.mark.parametrize(
    "body, needle",
    [
        (b"[1, 2]", "must be an object"),
        (b'{"resourceSpans": 5}', "OTLP/JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_json_says_what_is_wrong(body: bytes, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        decode(body, "application/json")


def test_unsupported_content_type() -> None:
    with pytest.raises(InputError, match="unsupported content type"):
        decode(b"", "text/plain")


def test_step_kinds_from_both_conventions() -> None:
    assert step_kind({"openinference.span.kind": "RETRIEVER"}, "x") == "retrieval"
    assert step_kind({"openinference.span.kind": "agent"}, "x") == "agent"
    assert step_kind({"gen_ai.operation.name": "execute_tool"}, "x") == "tool"
    assert step_kind({"gen_ai.operation.name": "chat"}, "x") == "llm"
    assert step_kind({"tool.name": "t"}, "x") == "tool"
    assert step_kind({"http.method": "GET"}, "x") == "function"
    # OpenInference wins where both are present.
    assert (
        step_kind({"openinference.span.kind": "CHAIN", "gen_ai.operation.name": "chat"}, "x")
        == "chain"
    )


def test_unflatten_folds_indexed_keys() -> None:
    out = unflatten(
        {
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.contents.0.text": "hi",
            "plain": 1,
        }
    )
    assert out["plain"] == 1
    assert out["llm.input_messages"][1] == {"message.role": "user"}
    assert out["llm.input_messages"][0]["message.role"] == "system"
    assert out["llm.input_messages"][0]["message.contents"] == [{"text": "hi"}]


def _step(i: int, start: int, end: int | None, inp: str | None, out: str | None) -> Step:
    return Step(
        run_id=TRACE,
        id=f"{i:016x}",
        name=f"s{i}",
        kind="tool",
        index=i,
        started_ns=start,
        ended_ns=end,
        input_hash=inp,
        output_hash=out,
    )


def test_inferred_data_edges() -> None:
    payloads = {
        "o1": orjson.dumps(["doc a", "doc b"]),
        "i2": orjson.dumps({"docs": ["doc a", "doc b"], "q": "x"}),  # a top-level value
        "o2": orjson.dumps("a summary that is long enough"),
        "o2b": orjson.dumps("a summary that is long enough"),  # a wrapper passing it on
        "i3": orjson.dumps({"prompt": "Use: a summary that is long enough. Answer."}),
        "short": orjson.dumps("ok"),
        "i4": orjson.dumps({"text": "ok then"}),
    }
    steps = [
        _step(1, 0, 10, None, "o1"),
        _step(2, 11, 20, "i2", "o2"),
        _step(5, 12, 21, None, "o2b"),
        _step(3, 30, 40, "i3", "short"),
        _step(4, 50, 60, "i4", None),
        _step(6, 5, 50, "i3", None),  # started before step 2 ended: no edge from it
    ]
    edges = {
        (e.source[-1], e.target[-1], e.evidence, e.detail)
        for e in infer_data_edges(steps, payloads)
    }
    assert ("1", "2", "content", "docs") in edges
    assert ("5", "3", "substring", "prompt") in edges  # the last producer of that text
    assert not any(e[:2] == ("2", "3") for e in edges)
    assert not any(e[1] == "4" for e in edges)  # "ok" is too short to be evidence
    assert not any(e[1] == "6" for e in edges)


def test_an_all_zero_parent_span_id_is_a_root_span() -> None:
    """OTLP's all-zero span id is no span (the invalid SpanId): a root span sent with eight
    zero bytes as its parent (as some exporters and converters send it) is the trace's
    root, as with no parent, not the child of a span that never comes (the run stayed
    'running' until closed idle)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from flightlog.otel.decode import request_to_batch

    def request(parent: bytes) -> ExportTraceServiceRequest:
        req = ExportTraceServiceRequest()
        spans = req.resource_spans.add().scope_spans.add().spans
        root = spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, parent_span_id=parent)
        root.name, root.start_time_unix_nano, root.end_time_unix_nano = "agent", 1, 9
        child = spans.add(trace_id=b"\x01" * 16, span_id=b"\x03" * 8, parent_span_id=b"\x02" * 8)
        child.name, child.start_time_unix_nano, child.end_time_unix_nano = "tool", 2, 3
        return req

    zero, empty = request_to_batch(request(bytes(8))), request_to_batch(request(b""))
    assert zero.errors == empty.errors == []
    assert zero.batch == empty.batch
    (run,) = zero.batch.runs
    assert run.status == "succeeded"
    assert [s.parent_id for s in zero.batch.steps] == [None, "02" * 8]
