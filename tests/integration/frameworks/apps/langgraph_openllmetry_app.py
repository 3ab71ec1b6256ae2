"""LangGraph, traced by OpenLLMetry's LangChain instrumentation
(opentelemetry-instrumentation-langchain) instead of OpenInference.

The same two-node graph as ``langgraph_app`` (``langgraph_app.run``). OpenLLMetry records
the compiled graph as an ``invoke_agent`` span (the agent), each node as an
``execute_task`` span and each tool as an ``execute_tool`` span whose
``gen_ai.tool.call.result`` is the callback's ``{"output": <serialised ToolMessage>,
"kwargs": ...}``; its chat-model spans carry ``gen_ai.input.messages`` /
``gen_ai.output.messages``.
"""

from __future__ import annotations

from tests.integration.frameworks.apps import langgraph_app


def main() -> None:
    from opentelemetry.instrumentation.langchain import LangchainInstrumentor

    langgraph_app.run(
        "langgraph_openllmetry", "claims-langgraph-openllmetry", LangchainInstrumentor()
    )


if __name__ == "__main__":
    main()
