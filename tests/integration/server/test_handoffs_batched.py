"""A hand-off between two agents whose spans reach one server in two requests that its writer
thread writes in one transaction: the hand-off is stored.

``decode`` links the hand-offs among each request's own spans; the writer links those
between requests over the run's stored spans and the batch's (``ingest.late_handoffs``).
Before it did so for a run not stored yet, two requests of a new trace written together lost
the hand-off. Real OTLP protobuf bodies, the real decoder, the real ingestion queue, a real
SQLite store with its ledger; the writer is held inside a first write while both requests
are queued, so it takes them together.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from flightlog.app import open_store
from flightlog.ledger import attach
from flightlog.ledger.verify import verify
from flightlog.otel.decode import decode
from flightlog.server.ingest import Ingestor

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
ROOT, TRIAGE, BILLING = "f000000000000001", "f000000000000002", "f000000000000003"


def _span(trace: str, sid: str, parent: str | None, start: int, end: int, **attrs: str) -> Span:
    kind = "CHAIN" if parent is None else "AGENT"
    attrs = {"openinference.span.kind": kind, "input.value": f"q-{sid}", **attrs}
    return Span(
        trace_id=bytes.fromhex(trace),
        span_id=bytes.fromhex(sid),
        parent_span_id=bytes.fromhex(parent) if parent else b"",
        name=kind.lower(),
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=T0 + start * MS,
        end_time_unix_nano=T0 + end * MS,
        attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attrs.items()],
        status=Status(code=Status.STATUS_CODE_OK),
    )


def _request(spans: list[Span]) -> Any:
    resource = {"attributes": [KeyValue(key="service.name", value=AnyValue(string_value="c"))]}
    body = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]  # type: ignore[arg-type]
    ).SerializeToString()
    return decode(body, "application/x-protobuf")


@pytest.fixture(autouse=True)
def _ledger_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FLIGHTLOG_LEDGER", "FLIGHTLOG_LEDGER_KEY", "FLIGHTLOG_URL", "FLIGHTLOG_CONFIG"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("root_first", [True, False], ids=["root-stored", "run-new"])
def test_a_hand_off_between_two_requests_written_together_is_stored(
    tmp_path: Path, root_first: bool
) -> None:
    trace, other = "7" * 32, "6" * 32
    store = open_store(f"sqlite:///{tmp_path / 'flightlog.db'}")
    ingestor = Ingestor(store)
    held, release = threading.Event(), threading.Event()

    def hold(tx: Any, applied: Any) -> None:
        if not held.is_set():
            held.set()
            release.wait(30)

    try:
        root = _span(trace, ROOT, None, 0, 1000)
        if root_first:
            ingestor.submit(_request([root])).result(30)
        store.add_write_hook(hold)
        first = ingestor.submit(_request([_span(other, ROOT, None, 0, 10)]))
        assert held.wait(30)  # the writer is inside that write
        triage = _span(trace, TRIAGE, ROOT, 10, 200, **{"graph.node.id": "triage"})
        billing = _span(
            trace,
            BILLING,
            ROOT,
            300,
            900,
            **{"graph.node.id": "billing", "graph.node.parent_id": "triage"},
        )
        waiting = [
            ingestor.submit(_request([triage] if root_first else [root, triage])),
            ingestor.submit(_request([billing])),
        ]
        transactions = ingestor.stats.transactions
        release.set()
        first.result(30)
        for f in waiting:
            assert f.result(30) == []
        assert ingestor.stats.transactions == transactions + 2  # the first, then both at once
        edges = {(e.source, e.target, e.kind) for e in store.get_edges(trace)}
        assert (TRIAGE, BILLING, "handoff") in edges
        report = verify(attach(store))  # type: ignore[arg-type]
        assert report.ok, report.summary()
    finally:
        release.set()
        ingestor.close()
        store.close()
