"""The server's timers run on their own: a failure followed by silence is paged once
``group_wait`` has passed, and a trace whose root span never arrives is closed after the idle
timeout and processed (real ``flightlog serve``, real webhook receivers, real OTel SDK)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.server.conftest import ServerProcess, free_port

from .conftest import Receiver, write_config

pytestmark = pytest.mark.slow

GROUP_WAIT_1S = 'group_wait = "1s"\ngroup_interval = "5m"\nrepeat_interval = "4h"\n'


@pytest.fixture
def quiet_server(tmp_path: Path, receiver: Receiver) -> Iterator[ServerProcess]:
    config = write_config(
        tmp_path / "flightlog.toml",
        receiver,
        route=GROUP_WAIT_1S,
        extra='\n[server]\nidle_trace_timeout = "1s"\n',
    )
    srv = ServerProcess(
        db=tmp_path / "server.db", port=free_port(), env={"FLIGHTLOG_CONFIG": str(config)}
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _tracer(url: str) -> tuple[object, object]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "claims-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=url + "/v1/traces")))
    return provider, provider.get_tracer("agent-app")


def _paged(receiver: Receiver, trace_id: str, deadline_s: float, srv: ServerProcess) -> list[str]:
    """Wait until the alert about ``trace_id`` reached the owning team's webhook."""
    deadline = time.monotonic() + deadline_s
    while True:
        told = [r.path for r in receiver.requests if trace_id in json.dumps(r.body)]
        if "/claims" in told:
            return told
        assert srv.alive(), srv.log.read_text() if srv.log else "server died"
        assert time.monotonic() < deadline, srv.log.read_text() if srv.log else "not told"
        time.sleep(0.1)


def test_a_quiet_server_pages_after_group_wait(
    quiet_server: ServerProcess, receiver: Receiver
) -> None:
    from opentelemetry.trace import Status, StatusCode

    provider, tracer = _tracer(quiet_server.url)
    with tracer.start_as_current_span("claims-triage") as root:  # type: ignore[attr-defined]
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("gen_ai.agent.name", "triager")
        with tracer.start_as_current_span("execute_tool search_policy") as tool:  # type: ignore[attr-defined]
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "search_policy")
            tool.set_status(Status(StatusCode.ERROR, "index unavailable"))
        root.set_status(Status(StatusCode.ERROR, "triage failed"))
        trace_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()  # type: ignore[attr-defined]
    sent = time.monotonic()
    # Nothing else arrives: only the server's own clock can flush the group.
    _paged(receiver, trace_id, 30, quiet_server)
    assert time.monotonic() - sent >= 0.9  # not before group_wait


def test_a_trace_without_its_root_span_is_closed_and_paged(
    quiet_server: ServerProcess, receiver: Receiver
) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: F401
    from opentelemetry.trace import Status, StatusCode

    provider, tracer = _tracer(quiet_server.url)
    root = tracer.start_span("claims-triage")  # type: ignore[attr-defined]
    root.set_attribute("gen_ai.operation.name", "invoke_agent")
    root.set_attribute("gen_ai.agent.name", "triager")
    from opentelemetry import trace

    ctx = trace.set_span_in_context(root)
    with tracer.start_as_current_span("execute_tool search_policy", context=ctx) as tool:  # type: ignore[attr-defined]
        tool.set_attribute("gen_ai.operation.name", "execute_tool")
        tool.set_attribute("gen_ai.tool.name", "search_policy")
        tool.set_status(Status(StatusCode.ERROR, "index unavailable"))
    trace_id = format(root.get_span_context().trace_id, "032x")
    provider.force_flush()  # type: ignore[attr-defined]
    # The root span never ends (the process "crashed"): the trace is closed after 1 s idle.
    _paged(receiver, trace_id, 30, quiet_server)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "flightlog",
            "show",
            trace_id,
            "--db",
            quiet_server.store_url,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    shown = json.loads(out)
    run = shown.get("run", shown)
    assert run["status"] == "failed"
    assert "without the trace's root span" in (run.get("reason") or "")
