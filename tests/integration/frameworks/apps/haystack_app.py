"""Haystack 3 (an ``Agent`` with tools on ``OpenAIChatGenerator``, as the component
``claims_agent`` of a ``Pipeline``), traced by openinference-instrumentation-haystack.

The agent is built with ``raise_on_tool_invocation_failure`` off for the ``swallowed``
scenario (Haystack hands the tool's error to the model) and on otherwise (the error escapes
the run). Runs from a venv of its own: see tests/data/otlp/README.md.
"""

from __future__ import annotations

import os

from tests.integration.frameworks.apps import common


def main(framework: str = "haystack", own_tracer: bool = False) -> None:
    """``own_tracer``: Haystack's own tracer on OpenTelemetry (opentelemetry-haystack, content
    tracing on) instead of OpenInference."""
    llm, otlp, record = common.args()
    if own_tracer:
        os.environ["HAYSTACK_CONTENT_TRACING_ENABLED"] = "true"  # read when tracing starts
    recorder = common.Recorder() if record else None
    provider = common.tracer_provider(otlp, f"claims-{framework}", recorder)

    from haystack import Pipeline
    from haystack.components.agents import Agent
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.dataclasses import ChatMessage
    from haystack.tools import tool
    from haystack.utils import Secret

    if own_tracer:
        from haystack import tracing
        from haystack_integrations.tracing.opentelemetry import OpenTelemetryTracer
        from opentelemetry import trace

        tracing.enable_tracing(OpenTelemetryTracer(trace.get_tracer("haystack")))
    else:
        from openinference.instrumentation.haystack import HaystackInstrumentor

        HaystackInstrumentor().instrument(tracer_provider=provider)

    @tool
    def lookup_policy(claim_id: str) -> str:
        """Look up the insurance policy that covers a claim; returns the policy as JSON text."""
        return common.lookup_policy(claim_id)

    @tool
    def compute_payout(policy: str) -> str:
        """Compute the payout of a claim from its policy (the JSON text lookup_policy
        returned)."""
        return common.compute_payout(policy)

    def one(scenario: str) -> str:
        agent = Agent(
            chat_generator=OpenAIChatGenerator(
                api_key=Secret.from_token("sk-test"), model="gpt-4o-mini", api_base_url=llm
            ),
            tools=[lookup_policy, compute_payout],
            system_prompt="You settle insurance claims with the tools.",
            raise_on_tool_invocation_failure=scenario != "swallowed",
        )
        pipeline = Pipeline()
        pipeline.add_component("claims_agent", agent)
        out = pipeline.run({"claims_agent": {"messages": [ChatMessage.from_user(common.QUESTION)]}})
        return str(out["claims_agent"]["last_message"].text)

    common.run_all(framework, one, provider, recorder, record)


if __name__ == "__main__":
    main()
