"""The ingestion workload: agent-like traces built with the real OpenTelemetry SDK.

Each trace has four spans following the OTel GenAI conventions (with the OpenInference
``input.value`` / ``output.value`` pair too, so every peer stores payloads):

    invoke_agent claims-agent          (root)
      chat gpt-4o-mini                 (plans a tool call)
      execute_tool search_policy       (its arguments are the chat's output)
      chat gpt-4o-mini                 (its input contains the tool's result)

Every trace has distinct text (the trace number is in every payload), so no store gets an
easy ride from content deduplication. The spans are built once and the same objects are
exported to every server.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

SPANS_PER_TRACE = 4
MODEL = "gpt-4o-mini"


def _messages(*pairs: tuple[str, str]) -> str:
    return json.dumps(
        [{"role": role, "parts": [{"type": "text", "content": text}]} for role, text in pairs]
    )


def build_spans(
    n_traces: int,
    *,
    base_ns: int = 1_767_225_600_000_000_000,
    instance_id: str | None = None,
    first: int = 0,
) -> list[ReadableSpan]:
    """``n_traces`` traces of four GenAI spans each, as finished SDK spans, in end order.

    ``first``: the number of the first trace (its text and start time): traces
    ``first .. first + n_traces - 1`` of one long sequence, so that parts built apart
    (``bench.pg_scaleout.build_requests``, ``workers``) add up to the whole.

    ``instance_id``: the resource's ``service.instance.id``; by default the SDK's, a random
    UUID, whose digits make the privacy screen's digit rules run on every run's attributes
    in some processes and not in others (a UUID with seven digits in one run): benches that
    compare trees set it, so that both scrub the same text."""
    exporter = InMemorySpanExporter()
    attributes = {"service.name": "claims-service", "service.version": "1.4.2"}
    if instance_id is not None:
        attributes["service.instance.id"] = instance_id
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("flightlog-bench", "1.0")
    ms = 1_000_000
    for i in range(first, first + n_traces):
        t = base_ns + i * 50 * ms
        policy = f"P-{100000 + i}"
        claim = f"Claim #{i}: water damage in kitchen, policy {policy}, amount {500 + i % 977} EUR"
        query = f"policy {policy} water damage coverage"
        docs = f"Policy {policy} section 4.{i % 9}: water damage covered to {1000 + i % 5000} EUR"
        answer = f"Claim #{i} approved: covered by section 4.{i % 9} of policy {policy}"

        root = tracer.start_span(
            "invoke_agent claims-agent",
            kind=SpanKind.INTERNAL,
            start_time=t,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "claims-agent",
                "gen_ai.agent.id": "claims-agent-v3",
                "gen_ai.conversation.id": f"conv-{i}",
                "input.value": json.dumps({"claim": claim}),
                "input.mime_type": "application/json",
                "openinference.span.kind": "AGENT",
            },
        )
        ctx = set_span_in_context(root)

        plan = tracer.start_span(
            f"chat {MODEL}",
            context=ctx,
            kind=SpanKind.CLIENT,
            start_time=t + 1 * ms,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": MODEL,
                "gen_ai.response.model": MODEL,
                "gen_ai.request.temperature": 0.0,
                "gen_ai.usage.input_tokens": 180 + i % 40,
                "gen_ai.usage.output_tokens": 24 + i % 7,
                "gen_ai.input.messages": _messages(
                    ("system", "You triage insurance claims. Call tools when needed."),
                    ("user", claim),
                ),
                "gen_ai.output.messages": _messages(("assistant", f"search_policy({query!r})")),
                "openinference.span.kind": "LLM",
            },
        )
        plan.end(end_time=t + 12 * ms)

        tool = tracer.start_span(
            "execute_tool search_policy",
            context=ctx,
            kind=SpanKind.INTERNAL,
            start_time=t + 13 * ms,
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "search_policy",
                "gen_ai.tool.type": "function",
                "gen_ai.tool.call.id": f"call_{i:08d}",
                "gen_ai.tool.call.arguments": json.dumps({"query": query}),
                "gen_ai.tool.call.result": json.dumps({"documents": [docs]}),
                "openinference.span.kind": "TOOL",
            },
        )
        tool.end(end_time=t + 20 * ms)

        final = tracer.start_span(
            f"chat {MODEL}",
            context=ctx,
            kind=SpanKind.CLIENT,
            start_time=t + 21 * ms,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": MODEL,
                "gen_ai.response.model": MODEL,
                "gen_ai.usage.input_tokens": 260 + i % 50,
                "gen_ai.usage.output_tokens": 40 + i % 11,
                "gen_ai.input.messages": _messages(
                    ("user", claim), ("tool", json.dumps({"documents": [docs]}))
                ),
                "gen_ai.output.messages": _messages(("assistant", answer)),
                "openinference.span.kind": "LLM",
            },
        )
        final.end(end_time=t + 40 * ms)

        root.set_attribute("output.value", json.dumps({"decision": answer}))
        root.set_status(Status(StatusCode.OK))
        root.end(end_time=t + 41 * ms)
    provider.shutdown()
    return list(exporter.get_finished_spans())


def batches(spans: Sequence[ReadableSpan], size: int) -> list[Sequence[ReadableSpan]]:
    return [spans[k : k + size] for k in range(0, len(spans), size)]
