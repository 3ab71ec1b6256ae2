"""The Traceloop SDK: ``@workflow``, ``@agent`` and ``@tool`` decorators (traceloop.span.kind,
traceloop.entity.name/input/output) with its OpenAI instrumentation, exporting through the
OTLP exporter it is given. A tool's exception escapes the agent, except in the
``swallowed`` scenario, where the agent hands it to the model and answers.
"""

from __future__ import annotations

import os
from typing import Any

from tests.integration.frameworks.apps import common


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
        return common.tool_loop(client, common.run_tools(functions, catch), question)

    @workflow(name="settle_claim")
    def settle_claim(scenario: str) -> str:
        return claims_agent(common.QUESTION, catch=scenario == "swallowed")

    common.run_all("traceloop", settle_claim, provider, recorder, record)


if __name__ == "__main__":
    main()
