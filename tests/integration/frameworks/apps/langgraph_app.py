"""LangGraph, traced by openinference-instrumentation-langchain.

A two-node graph: ``claims_agent`` (a ``ChatOpenAI`` model with the tools bound) and
``tools`` (a ``ToolNode``). The ``ToolNode`` catches tool errors and hands them to the model
in the ``swallowed`` scenario (``handle_tool_errors=True``); elsewhere they escape.
"""

from __future__ import annotations

from typing import Any

from tests.integration.frameworks.apps import common


def main() -> None:
    from openinference.instrumentation.langchain import LangChainInstrumentor

    run("langgraph", "claims-langgraph", LangChainInstrumentor())


def run(framework: str, service: str, instrumentor: Any) -> None:
    """Run every scenario through the graph, traced by ``instrumentor`` (a LangChain
    instrumentation's ``BaseInstrumentor``)."""
    llm, otlp, record = common.args()
    recorder = common.Recorder() if record else None
    provider = common.tracer_provider(otlp, service, recorder)

    from langchain_core.messages import HumanMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    instrumentor.instrument(tracer_provider=provider)
    tools = [tool(common.lookup_policy), tool(common.compute_payout)]
    model = ChatOpenAI(
        model="gpt-4o-mini", base_url=llm, api_key="sk-test", max_retries=0
    ).bind_tools(tools)

    def claims_agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def build(catch: bool) -> Any:
        graph = StateGraph(MessagesState)
        graph.add_node("claims_agent", claims_agent)
        graph.add_node("tools", ToolNode(tools, handle_tool_errors=catch))
        graph.add_edge(START, "claims_agent")
        graph.add_conditional_edges("claims_agent", tools_condition, {"tools": "tools", END: END})
        graph.add_edge("tools", "claims_agent")
        return graph.compile(name="claims_graph")

    graphs = {True: build(True), False: build(False)}

    def one(scenario: str) -> str:
        app = graphs[scenario == "swallowed"]
        result = app.invoke({"messages": [HumanMessage(common.QUESTION)]})
        return str(result["messages"][-1].content)

    common.run_all(framework, one, provider, recorder, record)


if __name__ == "__main__":
    main()
