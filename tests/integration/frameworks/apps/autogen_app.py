"""AutoGen AgentChat (``AssistantAgent`` with tools), traced by autogen-core's own
OpenTelemetry spans (GenAI conventions: ``invoke_agent``, ``execute_tool``) plus OpenInference's
OpenAI instrumentation for the model calls. AutoGen catches a tool's exception itself and
hands it to the model as an error result, so every fault here is handled inside the run.
"""

from __future__ import annotations

import asyncio

from tests.integration.frameworks.apps import common


def main() -> None:
    llm, otlp, record = common.args()
    recorder = common.Recorder() if record else None
    provider = common.tracer_provider(otlp, "claims-autogen", recorder)

    from autogen_agentchat.agents import AssistantAgent
    from autogen_core.models import ModelFamily, ModelInfo
    from autogen_ext.models.openai import OpenAIChatCompletionClient
    from openinference.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=provider)

    async def lookup_policy(claim_id: str) -> str:
        """Look up the insurance policy that covers a claim; returns the policy as JSON text."""
        return common.lookup_policy(claim_id)

    async def compute_payout(policy: str) -> str:
        """Compute the payout of a claim from its policy (the JSON text lookup_policy returned)."""
        return common.compute_payout(policy)

    tracer = provider.get_tracer("claims-app")
    loop = asyncio.new_event_loop()  # one loop for every run: the client is bound to it

    async def one(scenario: str) -> str:
        client = OpenAIChatCompletionClient(
            model="gpt-4o-mini",
            base_url=llm,
            api_key="sk-test",
            max_retries=0,
            model_info=ModelInfo(
                vision=False,
                function_calling=True,
                json_output=False,
                family=ModelFamily.GPT_4O,
                structured_output=False,
            ),
        )
        with tracer.start_as_current_span("settle_claim"):  # the app's own span per request
            return await _settle(client)

    async def _settle(client: OpenAIChatCompletionClient) -> str:
        agent = AssistantAgent(
            "claims_agent",
            model_client=client,
            tools=[lookup_policy, compute_payout],
            system_message="Settle insurance claims with the tools.",
            max_tool_iterations=4,
        )
        result = await agent.run(task=common.QUESTION)
        return str(result.messages[-1].to_text())

    common.run_all("autogen", lambda s: loop.run_until_complete(one(s)), provider, recorder, record)


if __name__ == "__main__":
    main()
