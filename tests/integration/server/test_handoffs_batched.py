"""A hand-off between two agents whose spans reach one server in two requests that its writer
thread writes in one transaction: the hand-off is stored (and the data edge from one
request's tool call to the other's LLM call).

``decode`` links the hand-offs among each request's own spans; the writer links those
between requests over the run's stored spans and the batch's (``ingest.late_handoffs``).
Before it did so for a run not stored yet, two requests of a new trace written together lost
the hand-off. Real OTLP protobuf bodies, the real decoder, the real ingestion queue, a real
SQLite store with its ledger; the writer is held inside a first write while both requests
are queued, so it takes them together.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from flightlog.app import open_store
from flightlog.ledger import attach
from flightlog.ledger.verify import verify
from flightlog.otel.decode import decode
from flightlog.server.ingest import Ingestor

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench._otlp_spans import body, span  # noqa: E402
from bench.handoff_cost import BILLING, LLM, ROOT, TOOL, TRIAGE, trace_spans  # noqa: E402


def _request(spans: list[Any]) -> Any:
    return decode(body(spans), "application/x-protobuf")


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
        # The trace of bench/handoff_cost.py: root, triage and its tool call; billing
        # (handed over from triage) and its LLM call, which quotes the tool's output.
        (root, *triage), billing = trace_spans(trace)
        if root_first:
            ingestor.submit(_request([root])).result(30)
        store.add_write_hook(hold)
        first = ingestor.submit(_request([span(other, ROOT, None, "CHAIN", 0, 10)]))
        assert held.wait(30)  # the writer is inside that write
        waiting = [
            ingestor.submit(_request(triage if root_first else [root, *triage])),
            ingestor.submit(_request(billing)),
        ]
        transactions = ingestor.stats.transactions
        release.set()
        first.result(30)
        for f in waiting:
            assert f.result(30) == []
        assert ingestor.stats.transactions == transactions + 2  # the first, then both at once
        edges = {(e.source, e.target, e.kind) for e in store.get_edges(trace)}
        assert (TRIAGE, BILLING, "handoff") in edges
        assert (TOOL, LLM, "data") in edges
        report = verify(attach(store))  # type: ignore[arg-type]
        assert report.ok, report.summary()
    finally:
        release.set()
        ingestor.close()
        store.close()
