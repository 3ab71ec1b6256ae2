"""The real OpenTelemetry SDK and OTLP/HTTP exporter, sending to ``flightlog serve``."""

from __future__ import annotations

import time

import httpx
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, Status, StatusCode

from flightlog.app import open_store


def _provider(url: str, compression: Compression = Compression.NoCompression) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "claims-svc", "service.version": "1.4"})
    )
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=url + "/v1/traces", compression=compression))
    )
    return provider


def test_genai_spans_become_runs_and_steps(server) -> None:  # type: ignore[no-untyped-def]
    provider = _provider(server.url, Compression.Gzip)
    tracer = provider.get_tracer("agent-app")
    with tracer.start_as_current_span("claims-triage") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("gen_ai.agent.name", "triager")
        root.set_attribute("session.id", "sess-1")
        with tracer.start_as_current_span("execute_tool search_policy") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "search_policy")
            tool.set_attribute("gen_ai.tool.call.arguments", '{"query": "water damage"}')
            tool.set_attribute(
                "gen_ai.tool.call.result", '"Policy 7: water damage from burst pipes is covered"'
            )
            tool_ctx = tool.get_span_context()
        with tracer.start_as_current_span("chat gpt-4o", links=[Link(tool_ctx)]) as llm:
            llm.set_attribute("gen_ai.operation.name", "chat")
            llm.set_attribute("gen_ai.request.model", "gpt-4o")
            llm.set_attribute("gen_ai.provider.name", "openai")
            llm.set_attribute("gen_ai.usage.input_tokens", 120)
            llm.set_attribute("gen_ai.usage.output_tokens", 30)
            llm.set_attribute(
                "gen_ai.input.messages",
                '[{"role": "user", "parts": [{"type": "text", "content": '
                '"Context: Policy 7: water damage from burst pipes is covered"}]}]',
            )
            llm.set_attribute("custom.flag", "kept")
            llm.add_event(
                "gen_ai.evaluation.result",
                {
                    "gen_ai.evaluation.name": "groundedness",
                    "gen_ai.evaluation.score.label": "fail",
                    "gen_ai.evaluation.score.value": 0.2,
                    "gen_ai.evaluation.explanation": "claim not supported by context",
                },
            )
            llm.set_status(Status(StatusCode.ERROR, "model refused"))
        root.set_status(Status(StatusCode.ERROR, "triage failed"))
        trace_id = format(root.get_span_context().trace_id, "032x")
    assert provider.force_flush(10_000)
    provider.shutdown()

    store = open_store(server.store_url)
    rec = store.get_record(trace_id)
    assert rec.run.workflow == "claims-triage"
    assert rec.run.status == "failed"
    assert rec.run.source == "otlp"
    assert rec.run.service == "claims-svc" and rec.run.version == "1.4"
    assert rec.run.attributes["session.id"] == "sess-1"
    assert [s.name for s in rec.steps] == ["claims-triage", "search_policy", "chat gpt-4o"]
    assert [s.index for s in rec.steps] == [1, 2, 3]
    root_step, tool_step, llm_step = rec.steps
    assert (root_step.kind, tool_step.kind, llm_step.kind) == ("agent", "tool", "llm")
    assert tool_step.parent_id == root_step.id and llm_step.parent_id == root_step.id
    assert tool_step.agent == "triager" and llm_step.agent == "triager"  # inherited
    assert llm_step.model == "gpt-4o" and llm_step.provider == "openai"
    assert (llm_step.input_tokens, llm_step.output_tokens) == (120, 30)
    assert llm_step.status == "error" and llm_step.error.message == "model refused"
    assert llm_step.attributes["custom.flag"] == "kept"
    assert rec.run.failed_step_id == llm_step.id
    payloads = store.get_payloads([tool_step.input_hash, tool_step.output_hash])
    assert payloads[tool_step.input_hash] == b'{"query":"water damage"}'
    edges = {(e.source, e.target, e.kind, e.evidence) for e in rec.edges}
    assert (tool_step.id, llm_step.id, "data", "link") in edges  # the span link
    [finding] = rec.findings
    assert finding.detector == "groundedness" and finding.severity == "error"
    assert finding.step_id == llm_step.id
    assert "claim not supported" in finding.message

    # The REST API shows the same.
    with httpx.Client(base_url=server.url) as client:
        page = client.get("/api/v1/runs", params={"status": "failed"}).json()
        assert [r["id"] for r in page["runs"]] == [trace_id]
        detail = client.get(f"/api/v1/runs/{trace_id[:10]}").json()
        assert [s["name"] for s in detail["steps"]] == [s.name for s in rec.steps]
        lineage = client.get(f"/api/v1/runs/{trace_id}/lineage").json()
        assert {
            "source": root_step.id,
            "target": tool_step.id,
            "kind": "parent",
            "evidence": "parent",
            "detail": None,
        } in lineage["edges"]
        assert (
            client.get(f"/api/v1/runs/{trace_id}/findings").json()["findings"][0]["detector"]
            == "groundedness"
        )

    # And on the command line, as a newcomer would look.
    from tests.conftest import run_cli

    runs = run_cli("runs", "--db", server.store_url, check=True).stdout
    assert trace_id[:8] in runs and "claims-triage" in runs
    shown = run_cli("show", trace_id[:12], "--db", server.store_url, check=True).stdout
    for name in ("claims-triage", "search_policy", "chat gpt-4o"):
        assert name in shown


def test_late_spans_reorder_steps_and_root_completes_run(server) -> None:  # type: ignore[no-untyped-def]
    provider = _provider(server.url)
    tracer = provider.get_tracer("t")
    store = open_store(server.store_url)
    base = time.time_ns()
    root = tracer.start_span("pipeline", start_time=base)
    from opentelemetry import trace

    ctx = trace.set_span_in_context(root)
    second = tracer.start_span("second", context=ctx, start_time=base + 2000)
    second.end(end_time=base + 3000)
    provider.force_flush(10_000)
    trace_id = format(root.get_span_context().trace_id, "032x")
    run = store.get_run(trace_id)
    assert run is not None and run.status == "running"  # root not yet arrived
    first = tracer.start_span("first", context=ctx, start_time=base + 1000)
    first.end(end_time=base + 1500)
    provider.force_flush(10_000)
    assert [s.name for s in store.get_steps(trace_id)] == ["first", "second"]
    assert [s.index for s in store.get_steps(trace_id)] == [1, 2]
    root.end(end_time=base + 5000)
    provider.force_flush(10_000)
    provider.shutdown()
    run = store.get_run(trace_id)
    assert run.status == "succeeded" and run.workflow == "pipeline"
    assert [(s.name, s.index) for s in store.get_steps(trace_id)] == [
        ("pipeline", 1),
        ("first", 2),
        ("second", 3),
    ]


def test_postgresql_store_behind_the_server(server_factory, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    server_factory.store = pg_url
    server = server_factory.start()
    provider = _provider(server.url)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("pg-workflow") as root:
        with tracer.start_as_current_span("tool call") as tool:
            tool.set_attribute("gen_ai.tool.name", "lookup")
            tool.set_attribute("output.value", "a result long enough to be traced downstream")
        with tracer.start_as_current_span("chat") as llm:
            llm.set_attribute("gen_ai.request.model", "m")
            llm.set_attribute(
                "input.value", "context: a result long enough to be traced downstream"
            )
        trace_id = format(root.get_span_context().trace_id, "032x")
    provider.force_flush(10_000)
    provider.shutdown()
    with httpx.Client(base_url=server.url) as client:
        rec = client.get(f"/api/v1/runs/{trace_id}").json()
    assert rec["run"]["status"] == "succeeded"
    assert [(s["index"], s["kind"], s["name"]) for s in rec["steps"]] == [
        (1, "function", "pg-workflow"),
        (2, "tool", "lookup"),
        (3, "llm", "chat"),
    ]
    tool_id, llm_id = rec["steps"][1]["id"], rec["steps"][2]["id"]
    assert {
        "run_id": trace_id,
        "source": tool_id,
        "target": llm_id,
        "kind": "data",
        "evidence": "substring",
        "detail": None,
    } in rec["edges"]


def test_failure_point_found_across_requests(server) -> None:  # type: ignore[no-untyped-def]
    from opentelemetry import trace

    provider = _provider(server.url)
    tracer = provider.get_tracer("t")
    base = time.time_ns()
    root = tracer.start_span("wf", start_time=base)
    ctx = trace.set_span_in_context(root)
    bad = tracer.start_span("validate", context=ctx, start_time=base + 10)
    bad.set_status(Status(StatusCode.ERROR, "invalid claim"))
    bad.end(end_time=base + 20)
    provider.force_flush(10_000)  # the errored step arrives first, on its own
    root.set_status(Status(StatusCode.ERROR, "workflow failed"))
    root.end(end_time=base + 30)
    provider.force_flush(10_000)
    provider.shutdown()
    run = open_store(server.store_url).get_run(format(root.get_span_context().trace_id, "032x"))
    assert run is not None and run.status == "failed" and run.reason == "workflow failed"
    assert run.failed_step_id == format(bad.get_span_context().span_id, "016x")
