"""CrewAI (a sequential crew of two agents), traced by openinference-instrumentation-crewai
with openinference-instrumentation-openai for the model calls.

``policy_agent`` looks the policy up (``lookup_policy``) and hands it on as its task's
output; ``payout_agent`` gets that output as its task's context and computes the payout
(``compute_payout``). CrewAI 1.x calls OpenAI models through the ``openai`` client itself
(its native provider, ``base_url`` pointing at the scripted endpoint), so the OpenAI
instrumentation records the LLM spans; CrewAI's own instrumentation records the crew, each
agent's task (named after the agent's role) and the tools. Under CrewAI's default
``tool_failure_policy="warn"`` a tool's exception goes back to the model as text: the
"swallowed" scenario; every other scenario runs under ``tool_failure_policy="raise"``, where
a tool's exception ends the crew with ``ToolExecutionFailedError``, as the scenarios want a
tool's exception to escape the framework.

Runs from a venv of its own: see tests/data/otlp/README.md.
"""

from __future__ import annotations

import os

from tests.integration.frameworks.apps import common


def main() -> None:
    llm, otlp, record = common.args()
    # No calls home: CrewAI's anonymous telemetry and its hosted trace viewer stay off.
    os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
    recorder = common.Recorder() if record else None
    provider = common.tracer_provider(otlp, "claims-crewai", recorder)

    from crewai import LLM, Agent, Crew, Process, Task
    from crewai.tools import tool
    from openinference.instrumentation.crewai import CrewAIInstrumentor
    from openinference.instrumentation.openai import OpenAIInstrumentor

    CrewAIInstrumentor().instrument(tracer_provider=provider)
    OpenAIInstrumentor().instrument(tracer_provider=provider)

    @tool("lookup_policy")
    def lookup_policy(claim_id: str) -> str:
        """Look up the insurance policy that covers a claim; returns the policy as JSON text."""
        return common.lookup_policy(claim_id)

    @tool("compute_payout")
    def compute_payout(policy: str) -> str:
        """Compute the payout of a claim from its policy (the JSON text lookup_policy returned)."""
        return common.compute_payout(policy)

    model = LLM(model="gpt-4o-mini", base_url=llm, api_key="sk-test")

    def one(scenario: str) -> str:
        policy = "warn" if scenario == "swallowed" else "raise"
        researcher = Agent(
            role="policy_agent",
            goal="Find the insurance policy that covers a claim.",
            backstory="You look policies up with the tools.",
            tools=[lookup_policy],
            llm=model,
            tool_failure_policy=policy,
            allow_delegation=False,
            max_iter=4,
        )
        settler = Agent(
            role="payout_agent",
            goal="Compute the payout of a claim from its policy.",
            backstory="You settle insurance claims with the tools.",
            tools=[compute_payout],
            llm=model,
            tool_failure_policy=policy,
            allow_delegation=False,
            max_iter=4,
        )
        find = Task(
            description="Look up the policy of claim C-7.",
            expected_output="The policy, as the JSON text the tool returned.",
            agent=researcher,
        )
        settle = Task(
            description="Compute the payout of claim C-7 from the policy found.",
            expected_output="The payout.",
            agent=settler,
            context=[find],
        )
        crew = Crew(agents=[researcher, settler], tasks=[find, settle], process=Process.sequential)
        return str(crew.kickoff())

    common.run_all("crewai", one, provider, recorder, record)


if __name__ == "__main__":
    main()
