"""``flightlog serve`` runs the same engine on ingestion: a failed trace sent with the real
OpenTelemetry SDK becomes an incident and an alert at a loopback receiver."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import Receiver, write_config

pytestmark = pytest.mark.slow

ROUTE0 = 'group_wait = "0s"\ngroup_interval = "5m"\nrepeat_interval = "4h"\n'


def test_server_ingestion_pages_the_owner(receiver: Receiver, tmp_path: Path) -> None:
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("starlette")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    config = write_config(tmp_path / "flightlog.toml", receiver, route=ROUTE0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = f"sqlite:///{tmp_path / 'server.db'}"
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flightlog", "serve", "--port", str(port), "--db", db],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={**os.environ, "FLIGHTLOG_CONFIG": str(config)},
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        provider = TracerProvider(resource=Resource.create({"service.name": "claims-svc"}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=url + "/v1/traces"))
        )
        tracer = provider.get_tracer("agent-app")
        with tracer.start_as_current_span("claims-triage") as root:
            root.set_attribute("gen_ai.operation.name", "invoke_agent")
            root.set_attribute("gen_ai.agent.name", "triager")
            with tracer.start_as_current_span("execute_tool search_policy") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
                tool.set_attribute("gen_ai.tool.name", "search_policy")
                tool.set_status(Status(StatusCode.ERROR, "index unavailable"))
            root.set_status(Status(StatusCode.ERROR, "triage failed"))
            trace_id = format(root.get_span_context().trace_id, "032x")
        provider.shutdown()
        deadline = time.monotonic() + 30
        while not [r for r in receiver.requests if trace_id in json.dumps(r.body)]:
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    told = [r for r in receiver.requests if trace_id in json.dumps(r.body)]
    assert all(r.status == 200 for r in told)
    assert any("claims-triage" in json.dumps(r.body) for r in told)
    out = subprocess.run(
        [sys.executable, "-m", "flightlog", "incidents", "--db", db, "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (incident,) = json.loads(out)
    assert incident["workflow"] == "claims-triage" and incident["first_run_id"] == trace_id


def test_server_rejects_bad_alerting_config_at_start(tmp_path: Path) -> None:
    pytest.importorskip("starlette")
    config = tmp_path / "flightlog.toml"
    config.write_text(
        '[teams.a]\nchannels = ["x"]\n\n[[owners]]\nteam = "a"\n\n[channels.x]\ntype = "slack"\n'
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flightlog",
            "serve",
            "--port",
            "0",
            "--db",
            f"sqlite:///{tmp_path / 's.db'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "FLIGHTLOG_CONFIG"},
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "flightlog.toml line 7: channel 'x' (slack) has no url" in r.stderr
