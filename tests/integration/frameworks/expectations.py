"""What each framework's runs must come out as (see apps/common.py for the scenarios)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

FAULTS = ("empty", "error_json", "truncated", "raises", "swallowed")
DATA_FAULTS = ("empty", "error_json", "truncated")


@dataclass(frozen=True)
class Framework:
    name: str
    label: str  # the framework and its instrumentation, for tables
    command: tuple[str, ...]
    agents: frozenset[str]  # agent names every run must show
    catches_all: bool = False  # the framework catches every tool error itself
    handoff: bool = False  # runs carry a handoff edge between agents
    # lookup_policy's text output is linked by a data edge to a later step it reached. Where
    # the tool's result travels inside a message envelope (LangChain's ToolMessage,
    # smolagents' observations) content matching does not see it yet; nor a JSON object
    # that reappears as JSON text in a later input.
    lineage: bool = True
    # Run live by tests/integration/frameworks (installed by the ``test`` extra); False:
    # only its recorded traces are tested (tests/data/otlp/README.md says why and how they
    # were recorded).
    live: bool = True
    # What the framework puts before a tool's own name in the name it offers the model and
    # records (Semantic Kernel's ``Plugin-function``): the step is named as the framework
    # names the tool.
    tool_prefix: str = ""
    # The agent the root cause (lookup_policy) must be attributed to in every faulty run;
    # None: not checked.
    root_agent: str | None = None

    def tool(self, name: str) -> str:
        return self.tool_prefix + name

    def root_cause(self, scenario: str) -> str | None:
        return None if scenario.startswith("ok") else self.tool("lookup_policy")

    def status(self, scenario: str) -> str:
        if scenario.startswith("ok"):
            return "succeeded"
        if scenario == "swallowed" or self.catches_all:
            return "degraded"
        return "failed"

    def failure_point(self, scenario: str) -> str | None:
        if scenario.startswith("ok"):
            return None
        return self.tool("compute_payout" if scenario in DATA_FAULTS else "lookup_policy")


APPS = "tests.integration.frameworks.apps"


def _py(module: str) -> tuple[str, ...]:
    return (sys.executable, "-m", f"{APPS}.{module}")


def _own_venv(name: str, module: str) -> tuple[tuple[str, ...], bool]:
    """A framework that runs from a venv of its own (its pins clash with the suite's other
    frameworks, or it is too heavy for the ``test`` extra): the Python named by
    ``FLIGHTLOG_<NAME>_PYTHON`` runs it live; without one only its recorded traces run
    (tests/data/otlp/README.md)."""
    python = os.environ.get(f"FLIGHTLOG_{name.upper()}_PYTHON", "")
    return (python or sys.executable, "-m", f"{APPS}.{module}"), bool(python)


_LLAMAINDEX = _own_venv("llamaindex", "llamaindex_app")  # LlamaIndex pins openai<3
_STRANDS = _own_venv("strands", "strands_app")
_ADK = _own_venv("adk", "adk_app")  # google-adk with litellm: heavy for the test extra
_SEMANTIC_KERNEL = _own_venv("semantic_kernel", "semantic_kernel_app")
_DSPY = _own_venv("dspy", "dspy_app")  # dspy with litellm: heavy for the test extra
_OPENLIT = _own_venv("openlit", "openlit_app")  # OpenLIT pins openai<3
_HAYSTACK = _own_venv("haystack", "haystack_tracing_app")  # haystack-ai: heavy for the test extra
# Installed by the test extra, but the same graph as "langgraph": live only on request
# (FLIGHTLOG_LANGGRAPH_OPENLLMETRY_PYTHON=.venv/bin/python), to keep the suite's time.
_LANGGRAPH_OPENLLMETRY = _own_venv("langgraph_openllmetry", "langgraph_openllmetry_app")
_CREWAI = _own_venv("crewai", "crewai_app")  # crewai pins openai<3 and brings chromadb
_AGNO = _own_venv("agno", "agno_app")
_LANGFUSE = _own_venv("langfuse", "langfuse_app")

FRAMEWORKS: dict[str, Framework] = {
    f.name: f
    for f in (
        Framework(
            "openai_agents",
            "OpenAI Agents SDK (openinference-instrumentation-openai-agents)",
            _py("openai_agents"),
            frozenset({"triage_agent", "claims_agent"}),
            handoff=True,
        ),
        Framework(
            "langgraph",
            "LangGraph (openinference-instrumentation-langchain)",
            _py("langgraph_app"),
            frozenset({"claims_agent"}),
            lineage=False,
        ),
        Framework(
            "langgraph_openllmetry",
            "LangGraph (opentelemetry-instrumentation-langchain, OpenLLMetry)",
            _LANGGRAPH_OPENLLMETRY[0],
            # OpenLLMetry names the compiled graph as the agent (gen_ai.agent.name on its
            # invoke_agent span); the graph's nodes are execute_task spans
            frozenset({"claims_graph"}),
            live=_LANGGRAPH_OPENLLMETRY[1],
        ),
        Framework(
            "pydantic_ai",
            "pydantic-ai (built-in OTel, GenAI conventions)",
            _py("pydantic_ai_app"),
            frozenset({"claims_agent"}),
        ),
        Framework(
            "smolagents",
            "smolagents (openinference-instrumentation-smolagents)",
            _py("smolagents_app"),
            frozenset({"claims_agent"}),
            catches_all=True,
            lineage=False,
        ),
        Framework(
            "openllmetry",
            "OpenLLMetry (opentelemetry-instrumentation-openai) + GenAI tool spans",
            _py("openllmetry_app"),
            frozenset({"claims_agent"}),
        ),
        Framework(
            "traceloop",
            "Traceloop SDK @workflow/@agent/@tool",
            _py("traceloop_app"),
            frozenset({"claims_agent"}),
        ),
        Framework(
            "autogen",
            "AutoGen AgentChat 0.7 (built-in GenAI spans) + OpenInference OpenAI",
            _py("autogen_app"),
            frozenset({"claims_agent"}),
            catches_all=True,  # tool errors go back to the model as error results
            lineage=False,
        ),
        Framework(
            "vercel_ai",
            "Vercel AI SDK 5 (Node, OTLP/JSON)",
            ("node", str(Path(__file__).parent / "vercel" / "app.mjs")),
            frozenset(),  # generateText names no agent
            catches_all=True,  # tool errors go back to the model as tool-error parts
        ),
        Framework(
            "llamaindex",
            "LlamaIndex FunctionAgent 0.14 (openinference-instrumentation-llama-index)",
            _LLAMAINDEX[0],
            frozenset(),  # the agent's name is only inside Python reprs, in no attribute
            catches_all=True,  # tool errors go back to the model as ToolOutput(is_error=True)
            live=_LLAMAINDEX[1],
        ),
        Framework(
            "adk",
            "Google ADK 2.13 LlmAgent on LiteLLM (own GenAI spans, content capture on)",
            _ADK[0],
            frozenset({"claims_agent"}),
            live=_ADK[1],
        ),
        Framework(
            "strands",
            "Strands Agents 1.62 on its OpenAI provider (own GenAI spans)",
            _STRANDS[0],
            frozenset({"claims_agent"}),
            catches_all=True,  # tool errors go back to the model as error tool results
            live=_STRANDS[1],
        ),
        Framework(
            "semantic_kernel",
            "Semantic Kernel 1.45 ChatCompletionAgent on OpenAI (own GenAI spans, sensitive on)",
            _SEMANTIC_KERNEL[0],
            frozenset({"claims_agent"}),
            catches_all=True,  # auto function calling hands a function's error to the model
            live=_SEMANTIC_KERNEL[1],
            tool_prefix="ClaimsPlugin-",  # kernel functions are named plugin-function
        ),
        Framework(
            "dspy",
            "DSPy 3.4 ReAct (openinference-instrumentation-dspy + -litellm)",
            _DSPY[0],
            frozenset(),  # DSPy modules name no agent
            catches_all=True,  # ReAct hands every tool exception to the model as an observation
            live=_DSPY[1],
        ),
        Framework(
            "openlit",
            "OpenLIT 1.45 (openlit.init, @openlit.trace) around a hand-written openai loop",
            _OPENLIT[0],
            frozenset(),  # openlit.agent_context names the agent on metrics only
            live=_OPENLIT[1],
        ),
        Framework(
            "crewai",
            "CrewAI 1.15 sequential crew of two agents (openinference-instrumentation-crewai"
            " + -openai)",
            _CREWAI[0],
            # payout_agent runs only once policy_agent's task is done: not in "raises"
            frozenset({"policy_agent"}),
            live=_CREWAI[1],
            root_agent="policy_agent",
        ),
        Framework(
            "agno",
            "Agno 3.1 workflow of two agents (openinference-instrumentation-agno)",
            _AGNO[0],
            frozenset({"policy_agent", "payout_agent"}),
            catches_all=True,  # tool errors go back to the model as the tool's result
            live=_AGNO[1],
            root_agent="policy_agent",
        ),
        Framework(
            "langfuse",
            "Langfuse Python SDK 3.15 @observe + langfuse.openai (its own OTLP exporter)",
            _LANGFUSE[0],
            frozenset({"policy_agent"}),  # payout_agent runs once policy_agent answered
            live=_LANGFUSE[1],
            root_agent="policy_agent",
        ),
        Framework(
            "haystack_tracing",
            "Haystack 3.4 Agent in a Pipeline (own tracer via opentelemetry-haystack, content on)",
            _HAYSTACK[0],
            # the agent is the pipeline component haystack.component.name, of type Agent
            frozenset({"claims_agent"}),
            live=_HAYSTACK[1],
        ),
    )
}

LIVE = sorted(name for name, fw in FRAMEWORKS.items() if fw.live)
