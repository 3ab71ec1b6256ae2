"""Late spans never break the audit trail.

A framework's spans reach the server in any order and batching (SimpleSpanProcessor sends
each span on its own, children before their parents; a batch processor splits a trace across
requests). Whatever order and batching, the store must ``verify``: the ledger logs facts only,
and what the server derives later (step order, inherited agents, inferred edges, the failure
point) never contradicts it. Real OTLP protobuf bodies, the real decoder, the real ingestion
queue, a real SQLite store with its ledger.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from flightlog.app import open_store
from flightlog.ledger import attach
from flightlog.ledger.verify import verify
from flightlog.otel.decode import decode
from flightlog.server.ingest import Ingestor

TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
T0 = 1_700_000_000_000_000_000
MS = 1_000_000

# (span id, parent, name, start ms, end ms, attributes, error)
SPANS: list[tuple[str, str | None, str, int, int, dict[str, str], bool]] = [
    (
        "a000000000000001",
        None,
        "claims-triage",
        0,
        100,
        {
            "openinference.span.kind": "AGENT",
            "agent.name": "triager",
            "input.value": json.dumps({"claim": "water damage in the kitchen, policy P-1234"}),
        },
        True,
    ),
    (
        "a000000000000002",
        "a000000000000001",
        "ChatOpenAI",
        5,
        20,
        {
            "openinference.span.kind": "LLM",
            "input.value": "water damage in the kitchen, policy P-1234",
            "output.value": "search the policy archive for P-1234 coverage",
        },
        False,
    ),
    (
        "a000000000000003",
        "a000000000000001",
        "search_policy",
        25,
        40,
        {
            "openinference.span.kind": "TOOL",
            "tool.name": "search_policy",
            "input.value": json.dumps({"query": "search the policy archive for P-1234 coverage"}),
            "output.value": "[]",
            "output.mime_type": "application/json",
        },
        False,
    ),
    (
        "a000000000000004",
        "a000000000000001",
        "ChatOpenAI",
        45,
        60,
        {
            "openinference.span.kind": "LLM",
            "input.value": json.dumps({"messages": ["coverage?", []]}),
            "output.value": "the claim is covered under the kitchen clause",
        },
        False,
    ),
    (
        "a000000000000005",
        "a000000000000001",
        "validate_claim",
        65,
        90,
        {
            "openinference.span.kind": "TOOL",
            "tool.name": "validate_claim",
            "input.value": "the claim is covered under the kitchen clause",
        },
        True,
    ),
    (
        "a000000000000006",
        "a000000000000005",
        "lookup",
        70,
        80,
        {"openinference.span.kind": "CHAIN", "input.value": "P-1234"},
        True,
    ),
]


def _span(i: int) -> Span:
    sid, parent, name, start, end, attrs, error = SPANS[i]
    return Span(
        trace_id=TRACE,
        span_id=bytes.fromhex(sid),
        parent_span_id=bytes.fromhex(parent) if parent else b"",
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=T0 + start * MS,
        end_time_unix_nano=T0 + end * MS,
        attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attrs.items()],
        status=Status(code=Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_OK),
    )


def _body(indices: list[int]) -> bytes:
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource={
                    "attributes": [
                        KeyValue(key="service.name", value=AnyValue(string_value="claims"))
                    ]
                },  # type: ignore[arg-type]
                scope_spans=[ScopeSpans(spans=[_span(i) for i in indices])],
            )
        ]
    )
    return req.SerializeToString()


@st.composite
def deliveries(draw: st.DrawFn) -> list[list[int]]:
    """The trace's spans in some order, cut into requests; sometimes one span sent twice."""
    order = draw(st.permutations(range(len(SPANS))))
    cuts = sorted(draw(st.sets(st.integers(1, len(SPANS) - 1), max_size=len(SPANS) - 1)))
    requests = [list(order[a:b]) for a, b in zip([0, *cuts], [*cuts, len(SPANS)], strict=True)]
    if draw(st.booleans()):
        requests.append([draw(st.sampled_from(range(len(SPANS))))])
    return requests


def _url(db: Path | str) -> str:
    return db if isinstance(db, str) else f"sqlite:///{db}"


def _ingest(db: Path | str, requests: list[list[int]]) -> None:
    store = open_store(_url(db))
    ingestor = Ingestor(store)
    try:
        for indices in requests:
            ingestor.submit(
                decode(_body(indices), "application/x-protobuf", infer_edges=False)
            ).result(30)
    finally:
        ingestor.close()
        store.close()


def _check(db: Path | str) -> dict[str, Any]:
    store = open_store(_url(db))
    try:
        report = verify(attach(store))  # type: ignore[arg-type]
        assert report.ok, report.summary()
        record = store.get_record(TRACE.hex())
        return {
            "status": record.run.status,
            "order": [s.id for s in record.steps],
            "index": {s.id: s.index for s in record.steps},
            "agents": {s.id: s.agent for s in record.steps},
            "failed_step": record.run.failed_step_id,
            "edges": sorted((e.source, e.target, e.kind) for e in record.edges),
        }
    finally:
        store.close()


@pytest.fixture(autouse=True)
def _ledger_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FLIGHTLOG_LEDGER", "FLIGHTLOG_LEDGER_KEY", "FLIGHTLOG_URL", "FLIGHTLOG_CONFIG"):
        monkeypatch.delenv(var, raising=False)


def test_one_request_at_a_time_children_first(tmp_path: Path) -> None:
    """SimpleSpanProcessor: each span alone, as it ends (children before parents)."""
    by_end = sorted(range(len(SPANS)), key=lambda i: SPANS[i][4])
    _ingest(tmp_path / "a.db", [[i] for i in by_end])
    _ingest(tmp_path / "b.db", [list(range(len(SPANS)))])
    late, whole = _check(tmp_path / "a.db"), _check(tmp_path / "b.db")
    assert late == whole
    assert late["status"] == "failed"
    assert late["order"] == [s[0] for s in SPANS]
    assert set(late["agents"].values()) == {"triager"}  # inherited from the agent span


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(requests=deliveries())
def test_any_arrival_order_and_batching_verifies(tmp_path: Path, requests: list[list[int]]) -> None:
    db = tmp_path / f"{abs(hash(str(requests)))}.db"
    for p in tmp_path.glob(db.name + "*"):
        p.unlink()
    _ingest(db, requests)
    got = _check(db)
    # Derived state depends on the facts, not on how they arrived.
    assert got["order"] == [s[0] for s in SPANS]
    assert got["index"] == {s[0]: i for i, s in enumerate(SPANS, 1)}
    assert set(got["agents"].values()) == {"triager"}


def test_children_first_on_postgresql(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ingest(tmp_path / "whole.db", [list(range(len(SPANS)))])
    whole = _check(tmp_path / "whole.db")
    monkeypatch.setenv("FLIGHTLOG_LEDGER_KEY", str(tmp_path / "pg-ledger.key"))
    by_end = sorted(range(len(SPANS)), key=lambda i: SPANS[i][4])
    _ingest(pg_url, [[i] for i in by_end])
    assert _check(pg_url) == whole


def test_a_trace_closed_idle_is_replaced_by_its_late_root(tmp_path: Path) -> None:
    """Closed because its root span never came, then the root comes after all: the root's run
    record replaces the stand-in (no conflict), and the store still verifies."""
    db = tmp_path / "late-root.db"
    store = open_store(f"sqlite:///{db}")
    ingestor = Ingestor(store)
    try:
        body = _body(list(range(1, len(SPANS))))  # everything but the root span
        ingestor.submit(decode(body, "application/x-protobuf", infer_edges=False)).result(30)
        assert ingestor.close_trace(TRACE.hex())
        closed = store.get_run(TRACE.hex())
        assert closed is not None and closed.status == "failed" and closed.ended_ns
        found = ingestor.submit(
            decode(_body([0]), "application/x-protobuf", infer_edges=False)
        ).result(30)
        assert not found  # no conflict
        run = store.get_run(TRACE.hex())
        assert run is not None and run.workflow == "claims-triage"
        assert "without the trace's root span" not in (run.reason or "")
    finally:
        ingestor.close()
        store.close()
    assert _check(db)["status"] == "failed"


@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_late_spans_of_a_trace_closed_idle_keep_it_closed_without_its_root(
    where: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closed because its root span never came ("unknown": no root, no outcome), then more
    of its spans come, still without the root: the run stays closed as docs/pipeline.md
    says (unknown, or failed at its failure point once a span ended in error; the reason
    says it was closed without its root span), not "succeeded" from a root it never had."""
    if where == "postgresql":
        url = request.getfixturevalue("pg_url")
        monkeypatch.setenv("FLIGHTLOG_LEDGER_KEY", str(tmp_path / "pg-ledger.key"))
    else:
        url = f"sqlite:///{tmp_path / 'closed-late.db'}"
    store = open_store(url)
    ingestor = Ingestor(store)
    rid = TRACE.hex()

    def send(indices: list[int]) -> None:
        body = _body(indices)
        ingestor.submit(decode(body, "application/x-protobuf", infer_edges=False)).result(30)

    try:
        send([1, 2])
        assert ingestor.close_trace(rid)
        run = store.get_run(rid)
        assert run is not None and (run.status, run.failed_step_id) == ("unknown", None)
        reason = run.reason
        assert reason and "without the trace's root span" in reason
        # a late OK span: nothing changes
        send([3])
        run = store.get_run(rid)
        assert run is not None and (run.status, run.failed_step_id, run.reason) == (
            "unknown",
            None,
            reason,
        )
        # late spans that ended in error: failed at the earliest-ending one, still closed
        send([4, 5])
        run = store.get_run(rid)
        assert run is not None
        assert (run.status, run.failed_step_id, run.reason) == ("failed", SPANS[5][0], reason)
    finally:
        ingestor.close()
        store.close()
    _check(url)
