"""Mapping by convention, not by framework name: spans of a made-up framework that follow
one convention each (Traceloop, the Vercel AI SDK, OpenLLMetry's indexed prompts, GenAI
content events, OpenInference graph nodes) come out with the right kinds, names, agents,
workflow, payloads, tokens (rolled-up usage not counted twice) and hand-off edges."""

from __future__ import annotations

import json
from typing import Any

import orjson

from flightlog.otel.conventions import is_version_key
from flightlog.otel.decode import decode

TRACE = "7a3f0c1e9b2d4f6a8c0e1b3d5f7a9c1e"
T0 = 1_700_000_000_000_000_000


def _v(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    return {"stringValue": value if isinstance(value, str) else json.dumps(value)}


def span(
    sid: str,
    parent: str | None,
    name: str,
    start: int,
    end: int,
    attrs: dict[str, Any],
    *,
    error: str | None = None,
    events: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": TRACE,
        "spanId": sid,
        "name": name,
        "startTimeUnixNano": str(T0 + start),
        "endTimeUnixNano": str(T0 + end),
        "attributes": [{"key": k, "value": _v(v)} for k, v in attrs.items()],
        "events": [
            {
                "name": n,
                "timeUnixNano": str(T0 + end),
                "attributes": [{"key": k, "value": _v(v)} for k, v in a.items()],
            }
            for n, a in events
        ],
    }
    if parent:
        out["parentSpanId"] = parent
    if error:
        out["status"] = {"code": 2, "message": error}
    return out


def ingest(*spans: dict[str, Any]) -> Any:
    body = {"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}
    return decode(orjson.dumps(body), "application/json")


def test_traceloop_conventions() -> None:
    r = ingest(
        span(
            "0000000000000001",
            None,
            "settle.workflow",
            0,
            100,
            {
                "traceloop.span.kind": "workflow",
                "traceloop.entity.name": "settle",
                "traceloop.workflow.name": "settle",
            },
        ),
        span(
            "0000000000000002",
            "0000000000000001",
            "planner.agent",
            1,
            90,
            {
                "traceloop.span.kind": "agent",
                "traceloop.entity.name": "planner",
            },
        ),
        span(
            "0000000000000003",
            "0000000000000002",
            "lookup.tool",
            2,
            10,
            {
                "traceloop.span.kind": "tool",
                "traceloop.entity.name": "lookup",
                "traceloop.entity.input": '{"args": [], "kwargs": {"q": "x"}}',
                "traceloop.entity.output": '"[]"',
            },
        ),
    )
    [run] = r.batch.runs
    steps = {s.id[-1]: s for s in r.batch.steps}
    assert run.workflow == "settle" and run.status == "succeeded"
    assert [(steps[k].kind, steps[k].name) for k in "123"] == [
        ("chain", "settle"),
        ("agent", "planner"),
        ("tool", "lookup"),
    ]
    assert steps["2"].agent == "planner"
    assert steps["3"].input_hash and steps["3"].output_hash


def test_vercel_ai_sdk_conventions_and_rolled_up_usage() -> None:
    r = ingest(
        span(
            "0000000000000001",
            None,
            "ai.generateText",
            0,
            100,
            {
                "ai.operationId": "ai.generateText",
                "ai.telemetry.functionId": "answer",
                "ai.model.id": "gpt-4o-mini",
                "ai.usage.promptTokens": 30,
                "ai.usage.completionTokens": 8,
                "ai.prompt": '{"prompt": "hi"}',
                "ai.response.text": "done",
            },
        ),
        span(
            "0000000000000002",
            "0000000000000001",
            "ai.generateText.doGenerate",
            1,
            40,
            {
                "ai.operationId": "ai.generateText.doGenerate",
                "gen_ai.request.model": "gpt-4o-mini",
                "ai.usage.promptTokens": 30,
                "ai.usage.completionTokens": 8,
                "ai.prompt.messages": '[{"role": "user", "content": "hi"}]',
            },
        ),
        span(
            "0000000000000003",
            "0000000000000001",
            "ai.toolCall",
            41,
            50,
            {
                "ai.operationId": "ai.toolCall",
                "ai.toolCall.name": "search",
                "ai.toolCall.args": '{"q": "hi"}',
                "ai.toolCall.result": '{"hits": []}',
            },
            error="search failed",
        ),
        span(
            "0000000000000004",
            "0000000000000001",
            "ai.generateText.doGenerate",
            51,
            99,
            {
                "ai.operationId": "ai.generateText.doGenerate",
                "gen_ai.request.model": "gpt-4o-mini",
            },
        ),
    )
    [run] = r.batch.runs
    steps = {s.id[-1]: s for s in r.batch.steps}
    assert run.workflow == "answer"
    assert [steps[k].kind for k in "1234"] == ["chain", "llm", "tool", "llm"]
    assert steps["3"].name == "search" and steps["3"].input_hash and steps["3"].output_hash
    # The wrapper's usage is the roll-up of the model call's: counted once.
    assert sum((s.input_tokens or 0) for s in r.batch.steps) == 30
    # The tool failed, the model answered after it: degraded, never a clean success.
    assert (run.status, run.failed_step_id) == ("degraded", steps["3"].id)


def test_openllmetry_indexed_prompts_and_genai_events() -> None:
    r = ingest(
        span(
            "0000000000000001",
            None,
            "invoke_agent helper",
            0,
            100,
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "helper",
                "gen_ai.usage.input_tokens": 99,
            },
        ),
        span(
            "0000000000000002",
            "0000000000000001",
            "openai.chat",
            1,
            50,
            {
                "llm.request.type": "chat",
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": "What is covered?",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "Pipes.",
                "gen_ai.usage.prompt_tokens": 12,
                "gen_ai.usage.completion_tokens": 3,
            },
        ),
        span(
            "0000000000000003",
            "0000000000000001",
            "chat m",
            51,
            99,
            {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"},
            events=[
                (
                    "gen_ai.client.inference.operation.details",
                    {
                        "gen_ai.input.messages": [{"role": "user", "parts": []}],
                        "gen_ai.output.messages": [{"role": "assistant", "parts": []}],
                    },
                )
            ],
        ),
    )
    [run] = r.batch.runs
    steps = {s.id[-1]: s for s in r.batch.steps}
    assert run.workflow == "helper"
    assert steps["1"].kind == "agent" and steps["1"].input_tokens is None  # a roll-up
    assert steps["2"].kind == "llm" and (steps["2"].input_tokens, steps["2"].output_tokens) == (
        12,
        3,
    )
    payloads = {p.hash: json.loads(p.data) for p in r.batch.payloads}
    assert payloads[steps["2"].input_hash][0] == {"role": "user", "content": "What is covered?"}
    assert payloads[steps["3"].input_hash] == [{"role": "user", "parts": []}]
    assert payloads[steps["3"].output_hash] == [{"role": "assistant", "parts": []}]


def test_openinference_graph_nodes_name_agents_and_hand_offs() -> None:
    r = ingest(
        span("0000000000000001", None, "workflow", 0, 100, {"openinference.span.kind": "CHAIN"}),
        span(
            "0000000000000002",
            "0000000000000001",
            "triage",
            1,
            20,
            {
                "openinference.span.kind": "AGENT",
                "graph.node.id": "triage",
            },
        ),
        span(
            "0000000000000003",
            "0000000000000001",
            "billing.run",
            21,
            99,
            {
                "openinference.span.kind": "AGENT",
                "graph.node.id": "billing",
                "graph.node.parent_id": "triage",
            },
        ),
    )
    steps = {s.id[-1]: s for s in r.batch.steps}
    assert steps["2"].agent == "triage" and steps["3"].agent == "billing"
    [edge] = [e for e in r.batch.edges if e.kind == "handoff"]
    assert (edge.source, edge.target) == (steps["2"].id, steps["3"].id)


def test_an_exception_handled_inside_an_ok_span_degrades_the_run() -> None:
    r = ingest(
        span("0000000000000001", None, "agent", 0, 100, {"openinference.span.kind": "AGENT"}),
        span(
            "0000000000000002",
            "0000000000000001",
            "fetch",
            1,
            10,
            {"openinference.span.kind": "TOOL", "tool.name": "fetch"},
            events=[("exception", {"exception.type": "TimeoutError"})],
        ),
        span(
            "0000000000000003",
            "0000000000000001",
            "llm",
            11,
            90,
            {"openinference.span.kind": "LLM"},
        ),
    )
    [run] = r.batch.runs
    assert run.status == "degraded"


def test_only_real_version_attributes_are_versions() -> None:
    assert is_version_key("prompt_version") and is_version_key("service.version")
    assert is_version_key("llm.prompt_template.version")
    assert is_version_key("llm.prompt_template.template")
    assert not is_version_key("llm.token_count.prompt")
    assert not is_version_key("ai.prompt.messages")
    assert not is_version_key("gen_ai.request.model")


def test_a_tool_named_only_by_its_span_name_is_named_by_what_the_span_name_names() -> None:
    """An OpenInference TOOL span without ``tool.name`` (``lookup_policy.__call__``), a GenAI
    ``execute_tool`` span without ``gen_ai.tool.name``: the tool, without the method suffix
    or operation prefix. A tool name attribute still wins, and spans of other kinds keep
    their span names."""
    oi_tool = {"openinference.span.kind": "TOOL"}
    genai_tool = {"gen_ai.operation.name": "execute_tool"}
    cases = [  # (span name, attributes, step name)
        ("lookup_policy.__call__", oi_tool, "lookup_policy"),
        ("lookup_policy.acall", oi_tool, "lookup_policy"),
        ("execute_tool compute_payout", genai_tool, "compute_payout"),
        ("Tool.__call__", {**oi_tool, "tool.name": "search"}, "search"),
        ("fetch", oi_tool, "fetch"),
        ("Predict.__call__", {"openinference.span.kind": "CHAIN"}, "Predict.__call__"),
        ("LM.__call__", {"openinference.span.kind": "LLM"}, "LM.__call__"),
    ]
    root = "0000000000000001"
    r = ingest(
        span(root, None, "ReAct.forward", 0, 100, {"openinference.span.kind": "CHAIN"}),
        *(
            span(f"{i + 2:016x}", root, name, 2 * i + 1, 2 * i + 2, attrs)
            for i, (name, attrs, _) in enumerate(cases)
        ),
    )
    names = {int(s.id, 16): s.name for s in r.batch.steps}
    assert names[1] == "ReAct.forward"
    assert [names[i + 2] for i in range(len(cases))] == [want for _, _, want in cases]


def test_a_tool_named_under_its_own_namespace_with_content_named_after_its_span() -> None:
    """An instrumentation's own keys (Haystack's tracer): ``<ns>.tool.name`` makes a tool
    step and names it, ``<span name>.input`` / ``.output`` (with or without the span's
    method) carry its content, a boolean ``<ns>.tool.error`` marks a call that failed on a
    span that ended OK. The model answered after the failed call: degraded."""
    r = ingest(
        span("0000000000000001", None, "acme.agent.run", 0, 100, {"acme.agent.input": "settle"}),
        span(
            "0000000000000002",
            "0000000000000001",
            "acme.step.tool",
            1,
            10,
            {
                "acme.tool.name": "lookup",
                "acme.step.tool.input": '{"claim": "C-7"}',
                "acme.step.tool.output": '{"error": "lookup failed"}',
                "acme.tool.error": True,
            },
        ),
        span(
            "0000000000000003",
            "0000000000000001",
            "acme.step.llm",
            11,
            90,
            {"gen_ai.request.model": "gpt-4o-mini"},
        ),
    )
    [run] = r.batch.runs
    steps = {s.id[-1]: s for s in r.batch.steps}
    payloads = {p.hash: orjson.loads(p.data) for p in r.batch.payloads}
    tool = steps["2"]
    assert (tool.kind, tool.name, tool.status) == ("tool", "lookup", "error")
    assert tool.error is not None and "lookup failed" in tool.error.message
    assert payloads[tool.input_hash] == {"claim": "C-7"}
    assert payloads[tool.output_hash] == {"error": "lookup failed"}
    assert payloads[steps["1"].input_hash] == "settle"  # acme.agent.run -> acme.agent.input
    assert (run.status, run.failed_step_id) == ("degraded", tool.id)


def test_what_namespaced_tool_keys_do_not_say() -> None:
    """Not read: an empty ``<ns>.tool.name``; an error flag that is not the boolean true
    or whose namespace names no tool; content keys named after another span; and a
    convention's own tool name comes first."""
    r = ingest(
        span("0000000000000001", None, "root", 0, 100, {}),
        span("0000000000000002", "0000000000000001", "a.step", 1, 5, {"a.tool.name": ""}),
        span(
            "0000000000000003",
            "0000000000000001",
            "b.step",
            6,
            10,
            {"b.tool.name": "fetch", "b.tool.error": "true", "other.output": "[]"},
        ),
        span(
            "0000000000000004",
            "0000000000000001",
            "c.step",
            11,
            20,
            {"c.tool.name": "c_tool", "d.tool.error": True},
        ),
        span(
            "0000000000000005",
            "0000000000000001",
            "e.step",
            21,
            30,
            {"gen_ai.tool.name": "search", "e.tool.name": "inner", "e.tool.error": True},
        ),
    )
    [run] = r.batch.runs
    steps = {s.id[-1]: s for s in r.batch.steps}
    assert steps["2"].kind == "function"
    assert (steps["3"].kind, steps["3"].name, steps["3"].status) == ("tool", "fetch", "ok")
    assert steps["3"].output_hash is None
    assert (steps["4"].name, steps["4"].status) == ("c_tool", "ok")
    assert (steps["5"].name, steps["5"].status) == ("search", "ok")
    assert run.status == "succeeded"


def _workflow_of(root_name: str, attrs: dict[str, Any] | None = None) -> str:
    r = ingest(span("0000000000000001", None, root_name, 0, 100, attrs or {}))
    [run] = r.batch.runs
    return str(run.workflow)


def test_an_instance_uuid_in_the_root_span_name_is_not_part_of_the_workflow() -> None:
    """A root span named after the object that ran (``Crew_<uuid>.kickoff``: a new id every
    run) names one workflow, so its runs share a history; other names stay as they were."""
    a = _workflow_of("Crew_3d51d285-2ab3-4454-b0cc-f248665cea54.kickoff")
    b = _workflow_of("Crew_C51C5E18-FBA6-4211-9945-4E9ED764B92C.kickoff")
    assert a == b == "Crew.kickoff"
    assert _workflow_of("settle 0bb4f777-ca59-4c7d-bbf8-b4f9a1a36f2e run") == "settle run"
    assert _workflow_of("job:0bb4f777-ca59-4c7d-bbf8-b4f9a1a36f2e.run") == "job"
    # not an instance id: kept as it was
    assert _workflow_of("0bb4f777-ca59-4c7d-bbf8-b4f9a1a36f2e") == (
        "0bb4f777-ca59-4c7d-bbf8-b4f9a1a36f2e"  # nothing else to name the workflow by
    )
    assert _workflow_of("x0bb4f777-ca59-4c7d-bbf8-b4f9a1a36f2e") == (
        "x0bb4f777-ca59-4c7d-bbf8-b4f9a1a36f2e"  # a longer token, not a UUID
    )
    assert _workflow_of("0bb4f777-ca59-4c7d-bbf8-b4f9a1a36f2") == (
        "0bb4f777-ca59-4c7d-bbf8-b4f9a1a36f2"  # one digit short
    )
    assert _workflow_of("claims-triage-2024") == "claims-triage-2024"
    assert _workflow_of("claims.run") == "claims"
    # a workflow the framework names itself is taken as written
    assert (
        _workflow_of(
            "Crew_3d51d285-2ab3-4454-b0cc-f248665cea54.kickoff",
            {"traceloop.workflow.name": "nightly-0bb4f777-ca59-4c7d-bbf8-b4f9a1a36f2e"},
        )
        == "nightly-0bb4f777-ca59-4c7d-bbf8-b4f9a1a36f2e"
    )


def test_langfuse_observations() -> None:
    """Langfuse's observation attributes: the type gives the kind, input and output are
    payloads, the model and the usage details (Langfuse's own keys or the provider's passed
    on) go on the generation only, the trace name names the workflow, an agent observation
    names its agent, and a tool error the agent handed back degrades the run."""
    usage_own = {"input": 40, "output": 12, "total": 52}
    usage_provider = {"prompt_tokens": 50, "completion_tokens": 9, "total_tokens": 59}
    r = ingest(
        span(
            "0000000000000001",
            None,
            "settle",
            0,
            100,
            {"langfuse.observation.type": "chain", "langfuse.trace.name": "claims"},
        ),
        span(
            "0000000000000002",
            "0000000000000001",
            "planner",
            1,
            99,
            {
                "langfuse.observation.type": "agent",
                "langfuse.observation.input": '{"args": ["C-7"], "kwargs": {}}',
                "langfuse.observation.usage_details": json.dumps(usage_own),  # a roll-up
            },
        ),
        span(
            "0000000000000003",
            "0000000000000002",
            "OpenAI-generation",
            2,
            10,
            {
                "langfuse.observation.type": "generation",
                "langfuse.observation.model.name": "m-1",
                "langfuse.observation.usage_details": json.dumps(usage_own),
                "langfuse.observation.output": '{"role": "assistant", "content": null}',
            },
        ),
        span(
            "0000000000000004",
            "0000000000000002",
            "lookup",
            11,
            20,
            {
                "langfuse.observation.type": "tool",
                "langfuse.observation.input": '{"args": [], "kwargs": {"q": "x"}}',
                "langfuse.observation.level": "ERROR",
            },
            error="backend down",
        ),
        span(
            "0000000000000005",
            "0000000000000002",
            "OpenAI-generation",
            21,
            30,
            {
                "langfuse.observation.type": "GENERATION",
                "langfuse.observation.usage_details": json.dumps(usage_provider),
                "langfuse.observation.output": "[]",
            },
        ),
        span(
            "0000000000000006",
            "0000000000000002",
            "note",
            31,
            32,
            {
                "langfuse.observation.type": "span",
                "langfuse.observation.usage_details": "not json",
            },
        ),
    )
    [run] = r.batch.runs
    steps = {s.id[-1]: s for s in r.batch.steps}
    assert run.workflow == "claims"
    assert [steps[k].kind for k in "123456"] == [
        "chain",
        "agent",
        "llm",
        "tool",
        "llm",
        "function",
    ]
    assert steps["2"].agent == "planner"
    assert (steps["3"].model, steps["3"].input_tokens, steps["3"].output_tokens) == ("m-1", 40, 12)
    assert (steps["5"].input_tokens, steps["5"].output_tokens) == (50, 9)
    # usage on the agent (a roll-up) and on a non-model span is not counted
    assert steps["2"].input_tokens is None and steps["6"].input_tokens is None
    payloads = {p.hash: json.loads(p.data) for p in r.batch.payloads}
    assert payloads[steps["2"].input_hash] == {"args": ["C-7"], "kwargs": {}}
    assert payloads[steps["4"].input_hash] == {"args": [], "kwargs": {"q": "x"}}
    assert payloads[steps["5"].output_hash] == []
    assert steps["4"].status == "error" and steps["4"].error is not None
    assert run.status == "degraded"  # a generation ran after the tool's error
    # the payload attributes are payloads, not step attributes
    assert "langfuse.observation.input" not in steps["4"].attributes


def _reply(model: Any = "gpt-4o-mini", usage: Any = None, role: str = "assistant") -> dict:
    usage = {"prompt_tokens": 44, "completion_tokens": 12} if usage is None else usage
    return {"role": role, "meta": {"model": model, "usage": usage}, "content": [{"text": "ok"}]}


def test_a_span_whose_output_is_a_model_reply_is_that_model_call() -> None:
    """A span no convention types, whose output is a chat model's reply naming its model
    and usage (a generator's ``{"replies": [...]}`` in ``<span>.output``, an OpenAI chat
    completion in ``output.value``), is a model call with that model and those tokens; an
    agent's conversation holding the same replies is not, so tokens are counted once."""
    completion = {
        "id": "c1",
        "model": "gpt-4o",
        "choices": [{"message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }
    conversation = {"messages": [{"role": "user", "content": "settle"}, _reply()]}
    r = ingest(
        span(
            "0000000000000001",
            None,
            "acme.agent.run",
            0,
            100,
            {
                "acme.agent.output": json.dumps(conversation),
            },
        ),
        span(
            "0000000000000002",
            "0000000000000001",
            "acme.step.llm",
            1,
            10,
            {
                "acme.step.llm.output": json.dumps({"replies": [_reply(), _reply()]}),
            },
        ),
        span(
            "0000000000000003",
            "0000000000000001",
            "call",
            11,
            20,
            {
                "output.value": json.dumps(completion),
            },
        ),
        span(
            "0000000000000004",
            "0000000000000001",
            "acme.step.llm",
            21,
            30,
            {
                "acme.step.llm.output": json.dumps(
                    _reply(usage={"input_tokens": 5, "output_tokens": 2})
                ),
            },
        ),
    )
    steps = {s.id[-1]: s for s in r.batch.steps}
    got = {k: (s.kind, s.model, s.input_tokens, s.output_tokens) for k, s in steps.items()}
    assert got == {
        "1": ("function", None, None, None),
        "2": ("llm", "gpt-4o-mini", 44, 12),  # the call's usage, not once per reply
        "3": ("llm", "gpt-4o", 7, 3),
        "4": ("llm", "gpt-4o-mini", 5, 2),
    }


def test_what_a_reply_in_an_output_does_not_say() -> None:
    """Not read as a model call: a text that mentions usage; counts that are not whole
    numbers; a reply without a model; a list with other roles; a mapping of two fields;
    a span a convention already types (its own token keys win); and a span with a reply
    that wraps another model call of the trace (only the inner call counts)."""
    outputs = {
        "2": 'the "model" reported "usage": {"prompt_tokens": 44, "completion_tokens": 12}',
        "3": json.dumps(_reply(usage={"prompt_tokens": "44", "completion_tokens": 12})),
        "4": json.dumps(_reply(usage={"prompt_tokens": 4.5, "completion_tokens": 1})),
        "5": json.dumps(_reply(model="")),
        "6": json.dumps([_reply(), _reply(role="tool")]),
        "7": json.dumps({"replies": [_reply()], "extra": 1}),
        "8": json.dumps(_reply(usage={"prompt_tokens": True, "completion_tokens": 1})),
    }
    r = ingest(
        span("0000000000000001", None, "root", 0, 100, {}),
        *(
            span(f"000000000000000{k}", "0000000000000001", "x", 1, 5, {"x.output": v})
            for k, v in outputs.items()
        ),
        span(
            "0000000000000009",
            "0000000000000001",
            "tool",
            6,
            9,
            {
                "gen_ai.tool.name": "t",
                "output.value": json.dumps(_reply()),
            },
        ),
        span(
            "000000000000000a",
            "0000000000000001",
            "gen.run",
            10,
            40,
            {
                "gen.run.output": json.dumps({"replies": [_reply()]}),
            },
        ),
        span(
            "000000000000000b",
            "000000000000000a",
            "chat",
            11,
            39,
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 44,
                "gen_ai.usage.output_tokens": 12,
            },
        ),
    )
    steps = {s.id[-1]: s for s in r.batch.steps}
    for k in (*outputs, "a"):
        s = steps[k]
        assert (k, s.kind, s.model, s.input_tokens) == (k, "function", None, None)
    assert (steps["9"].kind, steps["9"].input_tokens) == ("tool", None)
    assert (steps["b"].kind, steps["b"].input_tokens, steps["b"].output_tokens) == ("llm", 44, 12)
    assert sum(s.input_tokens or 0 for s in r.batch.steps) == 44


def test_a_pipeline_component_of_an_agent_type_names_the_agent() -> None:
    """``<ns>.component.type`` ending in ``Agent`` with ``<ns>.component.name``: an agent
    step named as the pipeline names the component; another component type, or no name,
    is not an agent."""
    r = ingest(
        span("0000000000000001", None, "acme.pipeline.run", 0, 100, {}),
        span(
            "0000000000000002",
            "0000000000000001",
            "acme.component.run",
            1,
            50,
            {
                "acme.component.name": "claims_agent",
                "acme.component.type": "Agent",
            },
        ),
        span(
            "0000000000000003",
            "0000000000000001",
            "acme.component.run",
            51,
            60,
            {
                "acme.component.name": "router",
                "acme.component.type": "ConditionalRouter",
            },
        ),
        span(
            "0000000000000004",
            "0000000000000001",
            "acme.component.run",
            61,
            70,
            {
                "acme.component.name": "",
                "acme.component.type": "ReActAgent",
            },
        ),
    )
    steps = {s.id[-1]: s for s in r.batch.steps}
    assert (steps["2"].kind, steps["2"].agent) == ("agent", "claims_agent")
    assert (steps["3"].kind, steps["3"].agent) == ("function", None)
    assert (steps["4"].kind, steps["4"].agent) == ("function", None)
