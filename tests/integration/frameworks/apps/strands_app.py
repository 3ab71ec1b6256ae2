"""Strands Agents (``Agent`` on its OpenAI model provider), traced by its own GenAI spans.

Strands catches a tool's exception and hands it to the model as an error tool result, so
every fault is handled inside the run. Runs from a venv of its own: see
tests/data/otlp/README.md.
"""

from __future__ import annotations

from tests.integration.frameworks.apps import common


def main() -> None:
    llm, otlp, record = common.args()
    recorder = common.Recorder() if record else None
    provider = common.tracer_provider(otlp, "claims-strands", recorder)

    from strands import Agent, tool
    from strands.models.openai import OpenAIModel

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

    model = OpenAIModel(client_args={"api_key": "sk-test", "base_url": llm}, model_id="gpt-4o-mini")

    def one(scenario: str) -> str:
        agent = Agent(
            name="claims_agent",
            model=model,
            tools=[lookup_policy, compute_payout],
            system_prompt="You settle insurance claims with the tools.",
            callback_handler=None,
        )
        return str(agent(common.QUESTION))

    common.run_all("strands", one, provider, recorder, record)


if __name__ == "__main__":
    main()
