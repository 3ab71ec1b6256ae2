"""The Langfuse Python SDK v3 (OpenTelemetry-based): ``@observe`` spans (``as_type`` chain,
agent, tool; ``langfuse.observation.*`` attributes) and its OpenAI integration
(``langfuse.openai``: generations with model and usage), exported by Langfuse's own span
processor and OTLP exporter, pointed at ``flightlog serve`` instead of a Langfuse server
(``LANGFUSE_HOST`` and ``LANGFUSE_OTEL_TRACES_EXPORT_PATH=v1/traces``).

Two hand-written agents: ``policy_agent`` looks the policy up and answers with it;
``payout_agent`` is given that answer and computes the payout. A tool's exception escapes
the agent, except in the ``swallowed`` scenario, where the agent hands it to the model and
answers.

Runs from a venv of its own: see tests/data/otlp/README.md.
"""

from __future__ import annotations

import os

from tests.integration.frameworks.apps import common


def main() -> None:
    llm, otlp, record = common.args()
    # Langfuse's exporter sends to LANGFUSE_HOST + /api/public/otel/v1/traces unless told
    # the path: here Flightlog's OTLP endpoint. The keys are Langfuse's Basic auth, which a
    # Flightlog server without API keys does not read.
    os.environ["LANGFUSE_HOST"] = otlp
    os.environ["LANGFUSE_OTEL_TRACES_EXPORT_PATH"] = "v1/traces"
    os.environ.setdefault("LANGFUSE_PUBLIC_KEY", "pk-lf-test")
    os.environ.setdefault("LANGFUSE_SECRET_KEY", "sk-lf-test")
    recorder = common.Recorder() if record else None

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    # Langfuse adds its own exporting processor to the provider it is given; the app only
    # counts (and, when recording, keeps) what is handed to OpenTelemetry.
    provider = TracerProvider(resource=Resource.create({"service.name": "claims-langfuse"}))
    provider.add_span_processor(SimpleSpanProcessor(common.counter))  # type: ignore[arg-type]
    if recorder is not None:
        provider.add_span_processor(SimpleSpanProcessor(recorder))  # type: ignore[arg-type]

    from langfuse import Langfuse, observe
    from langfuse.openai import OpenAI

    langfuse = Langfuse(tracer_provider=provider)
    client = OpenAI(base_url=llm, api_key="sk-test", max_retries=0)

    @observe(name="lookup_policy", as_type="tool")
    def lookup_policy(claim_id: str) -> str:
        return common.lookup_policy(claim_id)

    @observe(name="compute_payout", as_type="tool")
    def compute_payout(policy: str) -> str:
        return common.compute_payout(policy)

    functions = {"lookup_policy": lookup_policy, "compute_payout": compute_payout}

    @observe(name="policy_agent", as_type="agent")
    def policy_agent(question: str, catch: bool) -> str:
        run = common.run_tools(functions, catch)
        return common.tool_loop(client, run, question, tools=("lookup_policy",))

    @observe(name="payout_agent", as_type="agent")
    def payout_agent(policy_answer: str, catch: bool) -> str:
        run = common.run_tools(functions, catch)
        return common.tool_loop(client, run, policy_answer, tools=("compute_payout",))

    @observe(name="settle_claim", as_type="chain")
    def settle_claim(scenario: str) -> str:
        catch = scenario == "swallowed"
        return payout_agent(policy_agent(common.QUESTION, catch), catch)

    def one(scenario: str) -> str:
        try:
            return settle_claim(scenario)
        finally:
            langfuse.flush()

    common.run_all("langfuse", one, provider, recorder, record)


if __name__ == "__main__":
    main()
