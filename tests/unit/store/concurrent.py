"""What the concurrent-writers store tests share (``test_concurrent_*.py``): a run's stand-in,
deriving and writing a batch as a server does, holding one writer inside its transaction
until the other waits on it, and checking the ledger's edge entries."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from flightlog.ledger import attached
from flightlog.ledger.verify import verify
from flightlog.model import Batch, Run
from flightlog.server.ingest import derive
from flightlog.store.base import Tx
from flightlog.store.facts import PLACEHOLDER

Derived = tuple[Batch, dict[str, set[str]]]


def stand_in(run_id: str, started_ns: int) -> Run:
    """The run as a server that has not seen its root span stores it."""
    return Run(
        id=run_id,
        workflow="svc",
        started_ns=started_ns,
        status="running",
        source="otlp",
        attributes={PLACEHOLDER: True},
    )


def derive_for(store: Any, batch: Batch, run_id: str) -> Derived:
    """What the server does before writing: the lineage the batch's spans open."""
    return batch, derive(store, batch, {run_id})


def write_derived(store: Any, derived: Derived, run_id: str) -> None:
    """Write a derived batch as the server writes it."""
    batch, lineage = derived
    store.write(batch, reorder=[run_id], lineage=lineage)


def waiting_on_a_lock(store: Any) -> bool:
    """PostgreSQL: some backend of this database waits on a lock (the other writer)."""
    with store.read() as tx:
        row = tx.fetchone(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
    return bool(row and row[0])


def hold_for(one: Any, thread: threading.Thread, started: Any) -> Any:
    """A write hook for writer 1 (``one``): inside its first transaction, start ``thread``
    (writer 2) and let it get as far as it can (PostgreSQL: until it waits on writer 1's
    row lock; SQLite: a moment, in which it reads, then waits for the write lock).
    ``started()``: whether writer 2 already ran (the hook then does nothing)."""

    def hold(tx: Tx, batch: Batch) -> None:
        if thread.is_alive() or started():
            return
        thread.start()
        deadline = time.monotonic() + 10
        if one.dialect == "postgresql":
            while time.monotonic() < deadline and not waiting_on_a_lock(one):
                time.sleep(0.01)
        else:
            time.sleep(0.3)

    return hold


def check_edge_ledger(store: Any, run_id: str) -> None:
    """Each stored edge of the run is logged once, and the log verifies."""
    ledger = attached(store)
    assert ledger is not None
    ledger.integrate_pending()
    with store.read() as tx:
        rows = tx.fetchall("SELECT entry FROM ledger_entries WHERE kind = 'edge' ORDER BY seq")
    logged = []
    for (entry,) in rows:
        data = json.loads(bytes(entry))
        data = data.get("data", data)
        logged.append((data["source"], data["target"], data["kind"]))
    stored = {(e.source, e.target, e.kind) for e in store.get_record(run_id).edges}
    assert sorted(logged) == sorted(stored), logged  # each stored edge, once
    report = verify(ledger)  # type: ignore[arg-type]
    assert report.ok, report.summary()
