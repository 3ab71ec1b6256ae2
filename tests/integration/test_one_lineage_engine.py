"""One payload encoder and one lineage engine behind every front door.

The same agent recorded through the SDK and sent as OpenTelemetry spans gets the same
payloads (same hashes) and the same data edges; OTLP traces link a tool that returned ``[]``
to the LLM call that read its result (tool-call ids), see through framework state wrappers
(``{"args", "kwargs"}``) and into LLM prompts.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

import flightlog
from flightlog.otel.decode import decode
from flightlog.payload import payload_of

TRACE = "0af7651916cd43dd8448eb211c80319c"
T0 = 1_700_000_000_000_000_000
MS = 1_000_000


@flightlog.step(kind="tool", agent="retriever")
def search_policy(query: str) -> list[dict[str, str]]:
    return [{"id": "P-1234", "text": f"kitchen water damage is covered for {query}"}]


@flightlog.step(kind="llm", agent="planner")
def assess(docs: list[dict[str, str]], question: str) -> str:
    return f"Covered: {docs[0]['text']} (asked: {question})"


@flightlog.step(kind="guardrail", agent="validator")
def validate(assessment: str) -> bool:
    return assessment.startswith("Covered")


def _span(sid: int, start: int, end: int, attrs: dict[str, Any], parent: int = 1) -> Span:
    return Span(
        trace_id=bytes.fromhex(TRACE),
        span_id=sid.to_bytes(8, "big"),
        parent_span_id=parent.to_bytes(8, "big") if sid != 1 else b"",
        name=str(attrs.pop("name")),
        start_time_unix_nano=T0 + start * MS,
        end_time_unix_nano=T0 + end * MS,
        attributes=[
            KeyValue(key=k, value=AnyValue(string_value=v if isinstance(v, str) else json.dumps(v)))
            for k, v in attrs.items()
        ],
    )


def _decode(*spans: Span) -> Any:
    body = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])]
    ).SerializeToString()
    return decode(body, "application/x-protobuf")


def _edges(batch: Any) -> set[tuple[str, str, str]]:
    names = {s.id: s.name for s in batch.steps}
    return {(names[e.source], names[e.target], e.evidence) for e in batch.edges}


def test_sdk_and_otlp_give_the_same_payloads_and_edges(store: Any) -> None:
    with flightlog.run("claims-triage") as run:
        docs = search_policy("flat 3")
        validate(assess(docs, "is it covered?"))
    flightlog.flush()
    record = store.get_record(run.id)
    sdk_edges = {
        (a.name, b.name, e.evidence)
        for e in record.edges
        for a in record.steps
        for b in record.steps
        if a.id == e.source and b.id == e.target
    }
    assert {(a, b) for a, b, _ in sdk_edges} == {
        ("search_policy", "assess"),
        ("assess", "validate"),
        ("search_policy", "validate"),  # the document's text inside the assessment
    }

    # The same steps as OpenInference spans (what an instrumented framework would send).
    payloads = store.get_payloads(h for s in record.steps for h in (s.input_hash, s.output_hash))
    spans = [_span(1, 0, 100, {"name": "claims-triage", "openinference.span.kind": "AGENT"})]
    for n, s in enumerate(record.steps, 2):
        attrs: dict[str, Any] = {"name": s.name, "openinference.span.kind": s.kind.upper()}
        if s.kind == "guardrail":
            attrs["openinference.span.kind"] = "GUARDRAIL"
        attrs["input.value"] = payloads[s.input_hash or ""].decode()
        attrs["output.value"] = payloads[s.output_hash or ""].decode()
        attrs["input.mime_type"] = attrs["output.mime_type"] = "application/json"
        spans.append(_span(n, 10 * n, 10 * n + 5, attrs))
    result = _decode(*spans)
    otlp = {s.name: s for s in result.batch.steps}
    for s in record.steps:  # one encoder: the same values, the same hashes
        assert (otlp[s.name].input_hash, otlp[s.name].output_hash) == (s.input_hash, s.output_hash)
    # The same edges; only the SDK can also see that the very object was handed on.
    otlp_edges = {(a, b): ev for a, b, ev in _edges(result.batch)}
    assert set(otlp_edges) == {(a, b) for a, b, _ in sdk_edges}
    for a, b, ev in sdk_edges:
        assert ev in ("identity", otlp_edges[(a, b)]), (a, b, ev, otlp_edges[(a, b)])


def test_a_tool_that_returned_nothing_is_linked_by_its_call_id() -> None:
    call = "call_9f2c1d7e"
    result = _decode(
        _span(1, 0, 100, {"name": "agent", "gen_ai.operation.name": "invoke_agent"}),
        _span(
            2,
            5,
            20,
            {
                "name": "chat",
                "gen_ai.operation.name": "chat",
                "gen_ai.input.messages": [{"role": "user", "content": "find policy P-1234"}],
                "gen_ai.output.messages": [
                    {"role": "assistant", "tool_calls": [{"id": call, "name": "search"}]}
                ],
            },
        ),
        _span(
            3,
            25,
            30,
            {
                "name": "execute_tool search",
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "search",
                "gen_ai.tool.call.id": call,
                "gen_ai.tool.call.arguments": {"q": "P-1234"},
                "gen_ai.tool.call.result": [],
            },
        ),
        _span(
            4,
            35,
            50,
            {
                "name": "chat",
                "gen_ai.operation.name": "chat",
                "gen_ai.input.messages": [
                    {"role": "user", "content": "find policy P-1234"},
                    {"role": "tool", "tool_call_id": call, "content": "[]"},
                ],
            },
        ),
    )
    by_id = {s.id[-1]: s for s in result.batch.steps}
    edges = {(e.source[-1], e.target[-1], e.evidence) for e in result.batch.edges}
    assert ("3", "4", "declared") in edges, edges
    assert orjson.loads(payload_of([]).data) == []
    assert by_id["3"].output_hash == payload_of([], 1 << 20).hash


def test_framework_state_wrappers_and_prompts() -> None:
    rows = [{"id": "P-1234", "text": "kitchen water damage"}]
    result = _decode(
        _span(1, 0, 100, {"name": "graph", "openinference.span.kind": "CHAIN"}),
        _span(
            2, 5, 10, {"name": "search", "openinference.span.kind": "TOOL", "output.value": rows}
        ),
        _span(
            3,
            15,
            20,
            {
                "name": "rank",
                "openinference.span.kind": "CHAIN",
                "input.value": {"args": [{"documents": rows}], "kwargs": {"top_k": 3}},
                "output.value": "the best match is the kitchen water damage clause",
            },
        ),
        _span(
            4,
            25,
            30,
            {
                "name": "ChatOpenAI",
                "openinference.span.kind": "LLM",
                "input.value": {
                    "messages": [
                        {"role": "system", "content": "answer from the context"},
                        {
                            "role": "user",
                            "content": "Context: the best match is the kitchen water damage "
                            "clause. Is the claim covered?",
                        },
                    ]
                },
            },
        ),
    )
    edges = _edges(result.batch)
    assert ("search", "rank", "content") in edges
    assert ("rank", "ChatOpenAI", "substring") in edges


@flightlog.step(kind="tool")
def empty_search(query: str) -> list[str]:
    return []


@flightlog.step(kind="llm")
def answer(docs: list[str]) -> str:
    return "no documents" if not docs else docs[0]


def test_sdk_links_an_empty_result_by_identity(store: Any) -> None:
    with flightlog.run("wf") as run:
        answer(empty_search("anything"))
    flightlog.flush()
    record = store.get_record(run.id)
    names = {s.id: s.name for s in record.steps}
    assert {(names[e.source], names[e.target], e.evidence) for e in record.edges} == {
        ("empty_search", "answer", "identity")
    }
