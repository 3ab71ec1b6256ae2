"""smolagents (``ToolCallingAgent``), traced by openinference-instrumentation-smolagents.

smolagents catches a tool's exception itself and shows it to the model as an observation,
so every fault here is handled inside the run; the model then answers.
"""

from __future__ import annotations

from tests.integration.frameworks.apps import common


def main() -> None:
    llm, otlp, record = common.args()
    recorder = common.Recorder() if record else None
    provider = common.tracer_provider(otlp, "claims-smolagents", recorder)

    from openinference.instrumentation.smolagents import SmolagentsInstrumentor
    from smolagents import OpenAIServerModel, ToolCallingAgent, tool

    SmolagentsInstrumentor().instrument(tracer_provider=provider)

    @tool
    def lookup_policy(claim_id: str) -> str:
        """Look up the insurance policy that covers a claim; returns the policy as JSON text.

        Args:
            claim_id: the claim's id, such as C-7.
        """
        return common.lookup_policy(claim_id)

    @tool
    def compute_payout(policy: str) -> str:
        """Compute the payout of a claim from its policy.

        Args:
            policy: the JSON text lookup_policy returned.
        """
        return common.compute_payout(policy)

    model = OpenAIServerModel(model_id="gpt-4o-mini", api_base=llm, api_key="sk-test")

    def one(scenario: str) -> str:
        agent = ToolCallingAgent(
            tools=[lookup_policy, compute_payout],
            model=model,
            name="claims_agent",
            max_steps=4,
            verbosity_level=0,
        )
        return str(agent.run(common.QUESTION))

    common.run_all("smolagents", one, provider, recorder, record)


if __name__ == "__main__":
    main()
