"""Microsoft Semantic Kernel (``ChatCompletionAgent`` with a plugin, auto function calling,
on its OpenAI connector), traced by its own GenAI spans with sensitive content on
(``SEMANTICKERNEL_EXPERIMENTAL_GENAI_ENABLE_OTEL_DIAGNOSTICS_SENSITIVE=true``, read when
semantic_kernel is imported, so it is set first).

Semantic Kernel catches a function's exception during auto function calling and hands it
to the model as the function's result, so every fault is handled inside the run. Runs
from a venv of its own: see tests/data/otlp/README.md.
"""

from __future__ import annotations

import asyncio
import os

from tests.integration.frameworks.apps import common


def main() -> None:
    llm, otlp, record = common.args()
    os.environ["SEMANTICKERNEL_EXPERIMENTAL_GENAI_ENABLE_OTEL_DIAGNOSTICS_SENSITIVE"] = "true"
    recorder = common.Recorder() if record else None
    provider = common.tracer_provider(otlp, "claims-semantic-kernel", recorder)

    from openai import AsyncOpenAI
    from semantic_kernel.agents import ChatCompletionAgent
    from semantic_kernel.connectors.ai.open_ai import OpenAIChatCompletion
    from semantic_kernel.functions import kernel_function

    class ClaimsPlugin:
        @kernel_function(
            description="Look up the insurance policy that covers a claim; "
            "returns the policy as JSON text."
        )
        def lookup_policy(self, claim_id: str) -> str:
            return common.lookup_policy(claim_id)

        @kernel_function(
            description="Compute the payout of a claim from its policy "
            "(the JSON text lookup_policy returned)."
        )
        def compute_payout(self, policy: str) -> str:
            return common.compute_payout(policy)

    loop = asyncio.new_event_loop()  # one loop: the client's connections close on it
    client = AsyncOpenAI(api_key="sk-test", base_url=llm)

    def one(scenario: str) -> str:
        async def run() -> str:
            service = OpenAIChatCompletion(ai_model_id="gpt-4o-mini", async_client=client)
            agent = ChatCompletionAgent(
                name="claims_agent",
                service=service,
                plugins=[ClaimsPlugin()],
                instructions="You settle insurance claims with the tools.",
            )
            response = await agent.get_response(messages=common.QUESTION)
            return str(response.content)

        return loop.run_until_complete(run())

    common.run_all("semantic_kernel", one, provider, recorder, record)
    loop.run_until_complete(client.close())
    loop.close()


if __name__ == "__main__":
    main()
