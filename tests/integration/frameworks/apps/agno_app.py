"""Agno (a workflow of two agents on its OpenAI model), traced by
openinference-instrumentation-agno.

The workflow's first step runs ``policy_agent`` (``lookup_policy``); Agno hands its answer
to the second step as input, where ``payout_agent`` computes the payout
(``compute_payout``). Agno catches a tool's exception and hands it to the model as the
tool's result, so every fault is handled inside the run.

Runs from a venv of its own: see tests/data/otlp/README.md.
"""

from __future__ import annotations

import os

from tests.integration.frameworks.apps import common


def main() -> None:
    llm, otlp, record = common.args()
    os.environ.setdefault("AGNO_TELEMETRY", "false")  # no calls home
    recorder = common.Recorder() if record else None
    provider = common.tracer_provider(otlp, "claims-agno", recorder)

    from agno.agent import Agent
    from agno.models.openai import OpenAIChat
    from agno.workflow import Step, Workflow
    from openinference.instrumentation.agno import AgnoInstrumentor

    AgnoInstrumentor().instrument(tracer_provider=provider)

    def lookup_policy(claim_id: str) -> str:
        """Look up the insurance policy that covers a claim; returns the policy as JSON text.

        Args:
            claim_id: the claim's id, such as C-7.
        """
        return common.lookup_policy(claim_id)

    def compute_payout(policy: str) -> str:
        """Compute the payout of a claim from its policy.

        Args:
            policy: the JSON text lookup_policy returned.
        """
        return common.compute_payout(policy)

    def model() -> OpenAIChat:
        return OpenAIChat(id="gpt-4o-mini", base_url=llm, api_key="sk-test")

    def one(scenario: str) -> str:
        policy_agent = Agent(
            name="policy_agent",
            model=model(),
            tools=[lookup_policy],
            instructions="Find the insurance policy that covers the claim with the tools.",
            telemetry=False,
        )
        payout_agent = Agent(
            name="payout_agent",
            model=model(),
            tools=[compute_payout],
            instructions="Compute the payout of the claim from the policy you are given.",
            telemetry=False,
        )
        workflow = Workflow(
            name="claims",
            steps=[
                Step(name="find_policy", agent=policy_agent),
                Step(name="settle", agent=payout_agent),
            ],
            telemetry=False,
        )
        out = workflow.run(input=common.QUESTION)
        return str(out.content)

    common.run_all("agno", one, provider, recorder, record)


if __name__ == "__main__":
    main()
