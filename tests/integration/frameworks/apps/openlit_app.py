"""OpenLIT (``openlit.init``) around a hand-written tool-calling loop on the ``openai``
client: OpenLIT's auto-instrumentation traces the model calls (GenAI conventions with its
own extras), its ``@openlit.trace`` decorator traces the tools and the agent function, and
``openlit.agent_context`` names the agent on the model calls. OpenLIT builds its own
TracerProvider and OTLP exporter from ``otlp_endpoint``; the suite's span counter (and the
fixture recorder) are added to that provider.

A tool's exception escapes the loop, except in the ``swallowed`` scenario, where the loop
hands it to the model as the tool's result (the decorator still records the error).
"""

from __future__ import annotations

from typing import Any

from tests.integration.frameworks.apps import common


def main() -> None:
    llm, otlp, record = common.args()
    recorder = common.Recorder() if record else None

    import openai
    import openlit
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    openlit.init(
        otlp_endpoint=otlp,
        application_name="claims-openlit",
        # Flightlog takes traces (POST /v1/traces): OpenLIT's metrics and its inference
        # events (OTel log records, whose content the spans carry too) would find no route.
        disable_metrics=True,
        disable_events=True,
    )
    provider: Any = trace.get_tracer_provider()
    provider.add_span_processor(SimpleSpanProcessor(common.counter))
    if recorder is not None:
        provider.add_span_processor(SimpleSpanProcessor(recorder))

    @openlit.trace
    def lookup_policy(claim_id: str) -> str:
        return common.lookup_policy(claim_id)

    @openlit.trace
    def compute_payout(policy: str) -> str:
        return common.compute_payout(policy)

    functions = {"lookup_policy": lookup_policy, "compute_payout": compute_payout}
    client = openai.OpenAI(base_url=llm, api_key="sk-test", max_retries=0)

    @openlit.trace
    def claims_agent(question: str, catch: bool) -> str:
        with openlit.agent_context("claims_agent"):
            return common.tool_loop(client, common.run_tools(functions, catch), question)

    def one(scenario: str) -> str:
        return claims_agent(common.QUESTION, catch=scenario == "swallowed")

    common.run_all("openlit", one, provider, recorder, record)


if __name__ == "__main__":
    main()
