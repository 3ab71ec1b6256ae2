"""The Traceloop SDK: ``@workflow``, ``@agent`` and ``@tool`` decorators (traceloop.span.kind,
traceloop.entity.name/input/output) with its OpenAI instrumentation, exporting through the
OTLP exporter it is given. A tool's exception escapes the agent, except in the
``swallowed`` scenario, where the agent hands it to the model and answers.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tests.integration.frameworks.apps import common
from tests.integration.frameworks.apps.openllmetry_app import TOOLS


def main() -> None:
    llm, otlp, record = common.args()
    os.environ["TRACELOOP_TELEMETRY"] = "false"
    recorder = common.Recorder() if record else None

    import openai
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import agent, tool, workflow

    processors: list[Any] = [
        BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp + "/v1/traces")),
        SimpleSpanProcessor(common.counter),  # type: ignore[arg-type]
    ]
    if recorder is not None:
        processors.append(SimpleSpanProcessor(recorder))  # type: ignore[arg-type]
    Traceloop.init(
        app_name="claims-traceloop",
        telemetry_enabled=False,
        processor=processors,
        resource_attributes={"service.name": "claims-traceloop"},
    )
    from opentelemetry import trace

    provider: Any = trace.get_tracer_provider()
    client = openai.OpenAI(base_url=llm, api_key="sk-test", max_retries=0)

    @tool(name="lookup_policy")
    def lookup_policy(claim_id: str) -> str:
        return common.lookup_policy(claim_id)

    @tool(name="compute_payout")
    def compute_payout(policy: str) -> str:
        return common.compute_payout(policy)

    functions = {"lookup_policy": lookup_policy, "compute_payout": compute_payout}

    @agent(name="claims_agent")
    def claims_agent(question: str, catch: bool) -> str:
        messages: list[Any] = [{"role": "user", "content": question}]
        for _ in range(6):
            reply = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,
                tools=TOOLS,  # type: ignore[arg-type]
            )
            msg = reply.choices[0].message
            messages.append(msg.model_dump(exclude_none=True))
            if not msg.tool_calls:
                return str(msg.content)
            for call in msg.tool_calls:
                fn = call.function  # type: ignore[union-attr]
                try:
                    result = functions[fn.name](**json.loads(fn.arguments))
                except Exception as exc:
                    if not catch:
                        raise
                    result = f"{type(exc).__name__}: {exc}"
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        return "no answer"

    @workflow(name="settle_claim")
    def settle_claim(scenario: str) -> str:
        return claims_agent(common.QUESTION, catch=scenario == "swallowed")

    common.run_all("traceloop", settle_claim, provider, recorder, record)


if __name__ == "__main__":
    main()
