"""pydantic-ai, traced by its built-in OpenTelemetry instrumentation (OTel GenAI conventions).

One agent with two tools. In the ``swallowed`` scenario the tool turns its failure into
``ModelRetry`` (pydantic-ai's way to hand an error back to the model, which answers anyway);
elsewhere the exception escapes ``Agent.run_sync``.
"""

from __future__ import annotations

from tests.integration.frameworks.apps import common


def main() -> None:
    llm, otlp, record = common.args()
    recorder = common.Recorder() if record else None
    provider = common.tracer_provider(otlp, "claims-pydantic-ai", recorder)

    from pydantic_ai import Agent, InstrumentationSettings, ModelRetry
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    Agent.instrument_all(InstrumentationSettings(tracer_provider=provider))
    model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(base_url=llm, api_key="sk-t"))
    agent = Agent(
        model,
        name="claims_agent",
        instructions="Settle insurance claims with the tools.",
    )

    @agent.tool_plain
    def lookup_policy(claim_id: str) -> str:
        """Look up the insurance policy that covers a claim; returns the policy as JSON."""
        try:
            return common.lookup_policy(claim_id)
        except ConnectionError as exc:
            if common.scenario == "swallowed":
                raise ModelRetry(f"ConnectionError: {exc}") from exc
            raise

    @agent.tool_plain
    def compute_payout(policy: str) -> str:
        """Compute the payout of a claim from its policy (the JSON lookup_policy returned)."""
        return common.compute_payout(policy)

    def one(scenario: str) -> str:
        return str(agent.run_sync(common.QUESTION).output)

    common.run_all("pydantic_ai", one, provider, recorder, record)


if __name__ == "__main__":
    main()
