"""Direct edits of the stored records that an auditor relies on, on SQLite and PostgreSQL
alike (a real file, the real server): each is a finding of ``audit verify`` naming the
record and the field, and the untouched store verifies."""

from __future__ import annotations

import dataclasses

from flightlog.app import open_store
from flightlog.ledger import attach
from flightlog.ledger.verify import verify
from flightlog.model import Batch
from tests.integration.ledger._ledger_helpers import rid, run_batches


def _in_project(batches: list[Batch], project: str) -> list[Batch]:
    return [
        dataclasses.replace(b, runs=[dataclasses.replace(r, project=project) for r in b.runs])
        for b in batches
    ]


def test_a_run_moved_to_another_project_is_detected(store_url: str) -> None:
    """A run's project decides which API keys may read it: moving it (into the default
    project, or out of it) is a changed record."""
    store = open_store(store_url)
    try:
        for b in _in_project(run_batches(rid(1)), "acme"):
            store.write(b)
        for b in run_batches(rid(2)):
            store.write(b)
        ledger = attach(store)
        assert store.get_run(rid(1)).project == "acme"  # type: ignore[union-attr]
        report = verify(ledger)
        assert report.ok, report.summary()
        for run_id, project in ((rid(1), "default"), (rid(2), "acme")):
            with store.transaction() as tx:
                old = tx.fetchall("SELECT project FROM runs WHERE id = ?", (run_id,))[0][0]
                tx.execute("UPDATE runs SET project = ? WHERE id = ?", (project, run_id))
            report = verify(ledger)
            assert not report.ok
            assert report.problems[0].record == run_id
            assert "project" in report.problems[0].message, report.summary()
            with store.transaction() as tx:
                tx.execute("UPDATE runs SET project = ? WHERE id = ?", (old, run_id))
        assert verify(ledger).ok
    finally:
        store.close()
