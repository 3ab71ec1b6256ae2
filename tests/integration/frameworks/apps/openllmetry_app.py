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
            catch = scenario == "swallowed"
            answer = common.tool_loop(
                client, lambda name, args: call_tool(name, args, catch), common.QUESTION
            )
            root.set_attribute(
                "gen_ai.output.messages",
                json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]),
            )
            return answer

    common.run_all("openllmetry", one, provider, recorder, record)


if __name__ == "__main__":
    main()
