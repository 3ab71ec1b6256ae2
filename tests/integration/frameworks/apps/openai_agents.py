"""OpenAI Agents SDK, traced by openinference-instrumentation-openai-agents.

A triage agent hands off to a claims agent that calls ``lookup_policy`` then
``compute_payout``. Tools keep the SDK's default error handling (the error goes back to the
model as text) in the ``swallowed`` scenario; elsewhere a tool's exception escapes
``Runner.run``.
"""

from __future__ import annotations

from tests.integration.frameworks.apps import common


def main() -> None:
    llm, otlp, record = common.args()
    recorder = common.Recorder() if record else None
    provider = common.tracer_provider(otlp, "claims-agents-sdk", recorder)

    from agents import (
        Agent,
        Runner,
        function_tool,
        set_default_openai_api,
        set_default_openai_client,
    )
    from openai import AsyncOpenAI
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    set_default_openai_client(AsyncOpenAI(base_url=llm, api_key="sk-test", max_retries=0))
    set_default_openai_api("chat_completions")
    OpenAIAgentsInstrumentor().instrument(tracer_provider=provider)

    def one(scenario: str) -> str:
        catch = {} if scenario == "swallowed" else {"failure_error_function": None}
        tools = [
            function_tool(common.lookup_policy, **catch),  # type: ignore[arg-type]
            function_tool(common.compute_payout, **catch),  # type: ignore[arg-type]
        ]
        claims = Agent(
            name="claims_agent",
            instructions="Settle insurance claims with the tools.",
            model="gpt-4o-mini",
            tools=tools,
        )
        triage = Agent(
            name="triage_agent",
            instructions="Hand claims to the claims agent.",
            model="gpt-4o-mini",
            handoffs=[claims],
        )
        result = Runner.run_sync(triage, common.QUESTION)
        return str(result.final_output)

    common.run_all("openai_agents", one, provider, recorder, record)


if __name__ == "__main__":
    main()
