"""OpenLLMetry's OpenAI instrumentation (opentelemetry-instrumentation-openai) around a
hand-written agent loop whose own spans follow the OTel GenAI conventions: an
``invoke_agent`` span per run and an ``execute_tool`` span per tool call (with
``gen_ai.tool.call.arguments`` and ``gen_ai.tool.call.result``).

A tool's exception escapes the loop, except in the ``swallowed`` scenario, where the loop
hands it to the model as the tool's result (the span still records the error).
"""

from __future__ import annotations

import json
from typing import Any

from tests.integration.frameworks.apps import common

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_policy",
            "description": "Look up the policy that covers a claim.",
            "parameters": {
                "type": "object",
                "properties": {"claim_id": {"type": "string"}},
                "required": ["claim_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "compute_payout",
            "description": "Compute the payout of a claim from its policy JSON.",
            "parameters": {
                "type": "object",
                "properties": {"policy": {"type": "string"}},
                "required": ["policy"],
            },
        },
    },
]


def main() -> None:
    llm, otlp, record = common.args()
    recorder = common.Recorder() if record else None
    provider = common.tracer_provider(otlp, "claims-openllmetry", recorder)

    import openai
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.trace import Status, StatusCode

    OpenAIInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("claims-app")
    client = openai.OpenAI(base_url=llm, api_key="sk-test", max_retries=0)
    functions = {"lookup_policy": common.lookup_policy, "compute_payout": common.compute_payout}

    def call_tool(name: str, args: dict[str, Any], catch: bool) -> str:
        with tracer.start_as_current_span(
            f"execute_tool {name}", record_exception=True, set_status_on_exception=True
        ) as span:
            span.set_attribute("gen_ai.operation.name", "execute_tool")
            span.set_attribute("gen_ai.tool.name", name)
            span.set_attribute("gen_ai.agent.name", "claims_agent")
            span.set_attribute("gen_ai.tool.call.arguments", json.dumps(args))
            try:
                result = functions[name](**args)
            except Exception as exc:
                if not catch:
                    raise
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                return f"{type(exc).__name__}: {exc}"
            span.set_attribute("gen_ai.tool.call.result", result)
            return result

    def one(scenario: str) -> str:
        with tracer.start_as_current_span("invoke_agent claims_agent") as root:
            root.set_attribute("gen_ai.operation.name", "invoke_agent")
            root.set_attribute("gen_ai.agent.name", "claims_agent")
            root.set_attribute(
                "gen_ai.input.messages",
                json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": common.QUESTION}]}]
                ),
            )
            messages: list[Any] = [{"role": "user", "content": common.QUESTION}]
            for _ in range(6):
                reply = client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=messages,
                    tools=TOOLS,  # type: ignore[arg-type]
                )
                msg = reply.choices[0].message
                messages.append(msg.model_dump(exclude_none=True))
                if not msg.tool_calls:
                    root.set_attribute(
                        "gen_ai.output.messages",
                        json.dumps(
                            [
                                {
                                    "role": "assistant",
                                    "parts": [{"type": "text", "content": msg.content}],
                                }
                            ]
                        ),
                    )
                    return str(msg.content)
                for call in msg.tool_calls:
                    fn = call.function  # type: ignore[union-attr]
                    result = call_tool(
                        fn.name, json.loads(fn.arguments), catch=scenario == "swallowed"
                    )
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
            return "no answer"

    common.run_all("openllmetry", one, provider, recorder, record)


if __name__ == "__main__":
    main()
