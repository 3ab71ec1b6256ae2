"""``Finding.kind`` is a field: set by detectors and checks, stored, logged, and read from
``evidence["kind"]`` for findings stored before it existed."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from records import RunBuilder

from flightlog.app import open_store
from flightlog.detect import detect, run_detectors
from flightlog.detect.context import RunContext
from flightlog.ledger import attach
from flightlog.ledger.entry import finding_data
from flightlog.ledger.verify import verify
from flightlog.model import Batch, Finding, finding_kind
from flightlog.store.schema import CORE_MIGRATIONS, MIGRATIONS_TABLE


def test_detectors_set_the_kind_and_the_store_keeps_it(store: Any) -> None:
    b = RunBuilder("wf", status="failed")
    b.step("call", None, error=("TimeoutError", "read timed out after 30s"))
    run_id = b.write(store)
    found = detect(store, run_id)
    timeout = next(f for f in found if f.evidence.get("kind") == "timeout")
    assert timeout.kind == "timeout" == finding_kind(timeout)
    stored = {f.id: f for f in store.get_findings(run_id)}
    assert stored[timeout.id].kind == "timeout"
    assert verify(attach(store)).ok


def test_a_qualified_kind_keeps_its_id_and_evidence(store: Any) -> None:
    """``budget:tokens`` is kind ``budget``; the whole string still keys the finding's id."""
    b = RunBuilder("wf", status="failed")
    b.step("a", 1)
    run_id = b.write(store)
    ctx = RunContext.load(store, run_id)
    f = ctx.finding("budget", "budget:tokens", "tokens budget exceeded", used=3.0)
    assert f.kind == "budget" and f.evidence["kind"] == "budget:tokens"

    def broken(run: Any) -> list[Finding]:
        raise ValueError("boom")

    (b_f,) = run_detectors(ctx, {"mine": broken})
    assert b_f.kind == "broken" and b_f.evidence["kind"] == "broken:mine"


def test_findings_without_a_kind_read_it_from_evidence(store: Any) -> None:
    b = RunBuilder("wf", status="failed")
    b.step("a", 1)
    run_id = b.write(store)
    old = [
        Finding("1" * 32, run_id, "budget", "error", "m", evidence={"kind": "budget:tokens"}),
        Finding("2" * 32, run_id, "check", "error", "m", evidence={"check": "has_docs"}),
        Finding("3" * 32, run_id, "eval", "info", "m", evidence={}),
    ]
    store.write(Batch(findings=old))
    got = {f.id: f for f in store.get_findings(run_id)}
    assert [got[f.id].kind for f in old] == [None, None, None]
    assert [finding_kind(got[f.id]) for f in old] == ["budget", "check", ""]
    # Their ledger entries have no kind, as entries logged before the field existed.
    assert "kind" not in finding_data(got["1" * 32])
    assert verify(attach(store)).ok


def test_a_store_from_before_the_field_is_migrated_and_readable(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.execute(MIGRATIONS_TABLE)
    before = [m for m in CORE_MIGRATIONS if m.version < 3]
    for m in before:
        for stmt in m.statements:
            conn.execute(stmt)
        conn.execute(
            "INSERT INTO schema_migrations VALUES ('core', ?, ?, ?)",
            (m.version, m.description, time.time_ns()),
        )
    conn.execute(
        "INSERT INTO findings VALUES (?, ?, NULL, 'latency', 'warning', 'slow', ?, 5)",
        ("f" * 32, "a" * 32, '{"kind": "overrun:cost"}'),
    )
    conn.commit()
    conn.close()
    s = open_store(f"sqlite:///{db}")
    try:
        (f,) = s.get_findings("a" * 32)
        assert f.kind is None and finding_kind(f) == "overrun"
        assert s.schema_version("core") >= 3
    finally:
        s.close()
