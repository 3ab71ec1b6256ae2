"""Real instrumentations: the ``openai`` client (OpenInference) against a fake
OpenAI-compatible endpoint on loopback, and a LangChain agent with a fake chat model and a
tool (OpenInference LangChain), exporting to ``flightlog serve`` through the real OTLP
exporter."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from flightlog.app import open_store


class _FakeOpenAI(BaseHTTPRequestHandler):
    """``POST /v1/chat/completions`` answering like OpenAI, with usage."""

    requests: list[dict] = []  # type: ignore[type-arg]

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeOpenAI.requests.append(body)
        reply = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1700000000,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": "The claim is covered under policy 7.",
                    },
                }
            ],
            "usage": {"prompt_tokens": 42, "completion_tokens": 9, "total_tokens": 51},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_openai() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()


def _provider(server_url: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "agent-app"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=server_url + "/v1/traces"))
    )
    return provider


def test_openai_client_chat_call_is_an_llm_step(server, fake_openai: str) -> None:  # type: ignore[no-untyped-def]
    import openai
    from openinference.instrumentation.openai import OpenAIInstrumentor

    provider = _provider(server.url)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        client = openai.OpenAI(base_url=fake_openai, api_key="test-key", max_retries=0)
        answer = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "You triage insurance claims."},
                {"role": "user", "content": "Is water damage covered?"},
            ],
        )
    finally:
        instrumentor.uninstrument()
    assert answer.choices[0].message.content.startswith("The claim is covered")
    provider.force_flush()
    provider.shutdown()

    store = open_store(server.store_url)
    [run] = store.list_runs()
    rec = store.get_record(run.id)
    [step] = rec.steps
    assert step.kind == "llm" and step.index == 1
    assert step.model == "gpt-4o-mini" and step.provider == "openai"
    assert (step.input_tokens, step.output_tokens) == (42, 9)
    messages = step.attributes["llm.input_messages"]
    assert [m["message.role"] for m in messages] == ["system", "user"]
    assert messages[1]["message.content"] == "Is water damage covered?"
    assert step.attributes["llm.output_messages"][0]["message.content"] == (
        "The claim is covered under policy 7."
    )
    payloads = store.get_payloads([step.input_hash, step.output_hash])
    assert json.loads(payloads[step.input_hash])["messages"][1]["content"] == (
        "Is water damage covered?"
    )
    assert b"covered under policy 7" in payloads[step.output_hash]
    assert run.status == "succeeded" and run.source == "otlp"


def test_langchain_agent_with_tool_has_agent_llm_and_tool_steps(server) -> None:  # type: ignore[no-untyped-def]
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.runnables import RunnableLambda
    from langchain_core.tools import tool
    from openinference.instrumentation.langchain import LangChainInstrumentor

    @tool
    def lookup_policy(claim_id: str) -> str:
        """Find the policy clause that applies to a claim."""
        return f"Policy 7 covers water damage from burst pipes (claim {claim_id})"

    model = FakeMessagesListChatModel(
        responses=[
            AIMessage(
                content="",
                tool_calls=[{"name": "lookup_policy", "args": {"claim_id": "C-7"}, "id": "call_1"}],
            ),
            AIMessage(content="Covered: policy 7 applies."),
        ]
    )

    def agent_loop(question: str) -> str:
        messages = [HumanMessage(content=question)]
        for _ in range(4):
            reply = model.invoke(messages)
            messages.append(reply)
            if not reply.tool_calls:
                return str(reply.content)
            for call in reply.tool_calls:
                result = lookup_policy.invoke(call["args"])
                messages.append(ToolMessage(content=result, tool_call_id=call["id"]))
        return "gave up"

    provider = _provider(server.url)
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        agent = RunnableLambda(agent_loop).with_config(run_name="claims_agent")
        assert agent.invoke("Is claim C-7 covered?") == "Covered: policy 7 applies."
    finally:
        instrumentor.uninstrument()
    provider.force_flush()
    provider.shutdown()

    store = open_store(server.store_url)
    [run] = store.list_runs()
    rec = store.get_record(run.id)
    assert run.workflow == "claims_agent" and run.status == "succeeded"
    kinds = [(s.index, s.kind, s.name) for s in rec.steps]
    assert kinds[0] == (1, "agent", "claims_agent")
    root = rec.steps[0]
    llms = [s for s in rec.steps if s.kind == "llm"]
    tools = [s for s in rec.steps if s.kind == "tool"]
    assert len(llms) == 2 and len(tools) == 1
    assert tools[0].name == "lookup_policy"
    for s in llms + tools:  # parentage: every call is under the agent
        assert s.parent_id == root.id
        assert s.agent == "claims_agent"
    assert llms[0].index < tools[0].index < llms[1].index
    # The tool's output reached the second model call: an inferred data edge.
    assert any(
        e.source == tools[0].id and e.target == llms[1].id and e.kind == "data" for e in rec.edges
    ), rec.edges
