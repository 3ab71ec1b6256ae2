"""Overwrite attempts over real HTTP against a real ``flightlog serve``: a span re-sent with
the same ids and different content is refused with an OTLP partial success naming the
conflict, the stored facts do not change, the attempt is a finding and a ledger entry, and
``audit verify`` still passes; an identical re-send is accepted and changes nothing."""

from __future__ import annotations

import dataclasses
import time

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from flightlog.app import open_store
from flightlog.model import Batch
from flightlog.otel.encode import encode_bytes
from flightlog.store.facts import CONFLICT_DETECTOR
from tests.conftest import run_cli
from tests.integration.ledger._ledger_helpers import rid, run_batches
from tests.integration.server.conftest import ServerProcess

PB = {"Content-Type": "application/x-protobuf"}


def _post(server: ServerProcess, body: bytes) -> ExportTraceServiceResponse:
    r = httpx.post(server.url + "/v1/traces", content=body, headers=PB, timeout=30)
    assert r.status_code == 200, r.text
    resp = ExportTraceServiceResponse()
    resp.ParseFromString(r.content)
    return resp


def _foreign_trace(trace: bytes, status_code: int, message: str) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "payments"
    span = rs.scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = trace, bytes.fromhex("ab" * 8), "charge"
    span.start_time_unix_nano, span.end_time_unix_nano = (
        1_700_000_000 * 10**9,
        1_700_000_001 * 10**9,
    )
    span.status.code, span.status.message = status_code, message
    return req.SerializeToString()


def test_a_resent_run_record_cannot_turn_a_failed_run_into_succeeded(
    server_factory: ServerProcess,
) -> None:
    run_id = rid(7)
    batches = run_batches(run_id)
    store = open_store(f"sqlite:///{server_factory.db}")
    for b in batches:
        store.write(b)
    store.close()
    server = server_factory.start()

    end = batches[-1].runs[0]
    forged = Batch(runs=[dataclasses.replace(end, status="succeeded", reason=None)])
    resp = _post(server, encode_bytes(forged))
    assert resp.partial_success.rejected_spans == 1
    assert f"run {run_id} is already stored with different content" in (
        resp.partial_success.error_message
    )
    assert "status" in resp.partial_success.error_message

    honest = _post(server, encode_bytes(batches[1]))  # identical re-send: idempotent
    assert honest.partial_success.rejected_spans == 0
    server.stop()

    store = open_store(f"sqlite:///{server.db}")
    try:
        run = store.get_run(run_id)
        assert run is not None and run.status == "failed"
        found = [f for f in store.get_findings(run_id) if f.detector == CONFLICT_DETECTOR]
        assert len(found) == 1
    finally:
        store.close()
    out = run_cli("audit", "verify", "--db", f"sqlite:///{server.db}")
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_resent_otlp_span_with_another_status_is_rejected(server: ServerProcess) -> None:
    trace = bytes.fromhex("7e" * 16)
    first = _post(server, _foreign_trace(trace, 2, "card declined"))
    assert first.partial_success.rejected_spans == 0
    assert (
        _post(server, _foreign_trace(trace, 2, "card declined")).partial_success.rejected_spans == 0
    )
    resp = _post(server, _foreign_trace(trace, 1, ""))
    assert resp.partial_success.rejected_spans == 1
    assert f"step {trace.hex()}/{'ab' * 8}" in resp.partial_success.error_message
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the run-end pipeline runs off the request path
        r = httpx.get(f"{server.url}/api/v1/runs/{trace.hex()}", timeout=10)
        if r.status_code == 200:
            break
        time.sleep(0.1)
    server.stop()
    store = open_store(f"sqlite:///{server.db}")
    try:
        (step,) = store.get_steps(trace.hex())
        assert step.status == "error"
        run = store.get_run(trace.hex())
        assert run is not None and run.status == "failed"
    finally:
        store.close()
    out = run_cli("audit", "verify", "--db", f"sqlite:///{server.db}")
    assert out.returncode == 0, out.stdout + out.stderr
