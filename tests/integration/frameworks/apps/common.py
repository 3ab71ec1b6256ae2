"""What every framework app shares: the claims tools with their injected faults, the
scenario list, and the OpenTelemetry set-up (the real OTLP/HTTP exporter to ``flightlog
serve``, plus a copy of each scenario's spans written as an OTLP/JSON fixture on request).

An app is run as ``python -m tests.integration.frameworks.apps.<framework> LLM_URL OTLP_URL
[RECORD_DIR]`` and runs every scenario in ``SCENARIOS`` order, one trace each.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# scenario -> what lookup_policy does. "raises" lets the exception escape the framework;
# "swallowed" raises too, with the framework set to catch tool errors and carry on.
# Three successful runs come first: the history that "usually returns" is judged against.
SCENARIOS = ("ok_1", "ok_2", "ok_3", "empty", "error_json", "truncated", "raises", "swallowed")
GOOD_POLICY = '{"policy": "P-7", "coverage": "water damage from burst pipes", "limit": 5000}'
QUESTION = "Settle claim C-7: look up its policy, then compute the payout."

scenario = "ok_1"


def lookup_policy(claim_id: str) -> str:
    """Look up the insurance policy that covers a claim; returns the policy as JSON text."""
    if scenario == "empty":
        return "[]"
    if scenario == "error_json":
        return '{"error": "policy service unavailable", "code": 503}'
    if scenario == "truncated":
        return GOOD_POLICY[:40]
    if scenario in ("raises", "swallowed"):
        raise ConnectionError(f"policy service unreachable while looking up {claim_id}")
    return GOOD_POLICY


def compute_payout(policy: str) -> str:
    """Compute the payout of a claim from its policy (the JSON text lookup_policy returned)."""
    try:
        doc = json.loads(policy)
    except ValueError as exc:
        raise ValueError(f"cannot compute payout: policy is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or "limit" not in doc:
        raise ValueError(f"cannot compute payout: policy has no limit: {policy[:60]}")
    return json.dumps({"claim": "C-7", "payout": min(4200, int(doc["limit"])), "currency": "EUR"})


# The tools as the chat API offers them (the hand-written loops below and their apps).
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_policy",
            "description": "Look up the policy that covers a claim.",
            "parameters": {
                "type": "object",
                "properties": {"claim_id": {"type": "string"}},
                "required": ["claim_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "compute_payout",
            "description": "Compute the payout of a claim from its policy JSON.",
            "parameters": {
                "type": "object",
                "properties": {"policy": {"type": "string"}},
                "required": ["policy"],
            },
        },
    },
]


def tool_loop(
    client: Any,
    run_tool: Callable[[str, dict[str, Any]], str],
    question: str,
    tools: Sequence[str] = ("lookup_policy", "compute_payout"),
) -> str:
    """A hand-written tool-calling loop on an ``openai`` client: ask with the ``TOOLS`` named
    in ``tools``, run each tool the model calls through ``run_tool``, hand the results back,
    until the model answers (six rounds at most)."""
    offered = [t for t in TOOLS if t["function"]["name"] in tools]  # type: ignore[index]
    messages: list[Any] = [{"role": "user", "content": question}]
    for _ in range(6):
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, tools=offered
        )
        msg = reply.choices[0].message
        messages.append(msg.model_dump(exclude_none=True))
        if not msg.tool_calls:
            return str(msg.content)
        for call in msg.tool_calls:
            result = run_tool(call.function.name, json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return "no answer"


def run_tools(
    functions: dict[str, Callable[..., str]], catch: bool
) -> Callable[[str, dict[str, Any]], str]:
    """``run_tool`` for ``tool_loop``: a tool's exception escapes, or with ``catch`` goes
    back to the model as the tool's result (the "swallowed" scenario)."""

    def run(name: str, arguments: dict[str, Any]) -> str:
        try:
            return functions[name](**arguments)
        except Exception as exc:
            if not catch:
                raise
            return f"{type(exc).__name__}: {exc}"

    return run


def args() -> tuple[str, str, Path | None]:
    llm, otlp = sys.argv[1], sys.argv[2].rstrip("/")
    record = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    os.environ.setdefault("OPENAI_API_KEY", "sk-test-not-a-real-key")
    os.environ["OPENAI_BASE_URL"] = llm
    return llm, otlp, record


class Recorder:
    """A span exporter keeping a copy of what it is given, written out per scenario."""

    def __init__(self) -> None:
        self.spans: list[Any] = []

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def write(self, path: Path) -> None:
        from google.protobuf import json_format
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        doc = json_format.MessageToDict(encode_spans(self.spans))
        _ids_to_hex(doc)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        self.spans.clear()


def _ids_to_hex(obj: Any) -> None:
    """protobuf's JSON writes ids as base64; OTLP/JSON writes them as hex."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str):
                obj[k] = base64.b64decode(v).hex()
            else:
                _ids_to_hex(v)
    elif isinstance(obj, list):
        for v in obj:
            _ids_to_hex(v)


class Counter:
    """A span exporter that only counts: how many spans the app handed to OpenTelemetry."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


counter = Counter()


def tracer_provider(otlp: str, service: str, recorder: Recorder | None) -> Any:
    """A global TracerProvider exporting to ``otlp`` (batching, as in production)."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp + "/v1/traces")))
    provider.add_span_processor(SimpleSpanProcessor(counter))  # type: ignore[arg-type]
    if recorder is not None:
        provider.add_span_processor(SimpleSpanProcessor(recorder))  # type: ignore[arg-type]
    trace.set_tracer_provider(provider)
    return provider


def run_all(
    framework: str,
    one: Callable[[str], Any],
    provider: Any,
    recorder: Recorder | None,
    record_dir: Path | None,
) -> None:
    """Run every scenario through ``one(scenario)``; print one outcome line per scenario."""
    global scenario
    for name in SCENARIOS:
        scenario = name
        try:
            answer = one(name)
            outcome = f"answered: {str(answer)[:120]!r}"
        except Exception as exc:  # the fault escaped the framework: that is the point
            outcome = f"raised {type(exc).__name__}: {str(exc)[:120]}"
        provider.force_flush()
        if recorder is not None and record_dir is not None:
            recorder.write(record_dir / framework / f"{name}.json")
        print(f"{framework} {name}: {outcome}", flush=True)
    provider.shutdown()
    print(f"spans exported: {counter.spans}", flush=True)
