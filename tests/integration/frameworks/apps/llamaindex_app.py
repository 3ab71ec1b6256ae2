"""LlamaIndex (``FunctionAgent``), traced by openinference-instrumentation-llama-index.

LlamaIndex records each tool's result as a ``ToolOutput`` (``tool_name``, ``raw_output``,
``is_error``, ...) under a ``FunctionTool.acall`` TOOL span, wrapped by the workflow's
``BaseWorkflowAgent.call_tool`` CHAIN span; a tool's exception is caught and handed to the
model as an error result, so every fault is handled inside the run.

Runs from a venv of its own (LlamaIndex pins openai<3): see tests/data/otlp/README.md.
"""

from __future__ import annotations

import asyncio

from tests.integration.frameworks.apps import common


def main() -> None:
    llm, otlp, record = common.args()
    recorder = common.Recorder() if record else None
    provider = common.tracer_provider(otlp, "claims-llamaindex", recorder)

    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai import OpenAI
    from openinference.instrumentation.llama_index import LlamaIndexInstrumentor

    LlamaIndexInstrumentor().instrument(tracer_provider=provider)

    tools = [
        FunctionTool.from_defaults(fn=common.lookup_policy),
        FunctionTool.from_defaults(fn=common.compute_payout),
    ]
    model = OpenAI(model="gpt-4o-mini", api_base=llm, api_key="sk-test")

    def one(scenario: str) -> str:
        agent = FunctionAgent(
            name="claims_agent",
            description="settles claims",
            tools=tools,
            llm=model,
            system_prompt="You settle insurance claims with the tools.",
        )

        async def go() -> str:
            return str(await agent.run(user_msg=common.QUESTION))

        return asyncio.run(go())

    common.run_all("llamaindex", one, provider, recorder, record)


if __name__ == "__main__":
    main()
