"""Direct edits of the stored records that an auditor relies on, on SQLite and PostgreSQL
alike (a real file, the real server): each is a finding of ``audit verify`` naming the
record and the field, and the untouched store verifies."""

from __future__ import annotations

import dataclasses
import time

from flightlog.app import open_store
from flightlog.ledger import attach
from flightlog.ledger.entry import run_data
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


def test_an_entry_appended_to_rewrite_a_closed_record_is_detected(store_url: str) -> None:
    """An editor of the database appends, with Flightlog's own code (the tree recomputed),
    entries saying the failed run succeeded and its failing step was ok, and edits the rows
    to match: each entry contradicts an earlier one, which facts never do."""
    store = open_store(store_url)
    try:
        for b in run_batches(rid(3)):
            store.write(b)
        ledger = attach(store)
        assert verify(ledger).ok
        run = store.get_run(rid(3))
        step = store.get_steps(rid(3))[0]
        assert run is not None and run.status == "failed"
        now = time.time_ns()
        forged_run = dataclasses.replace(run, status="succeeded", reason=None)
        forged_step = dataclasses.replace(step, status="ok", name="renamed")
        with store.transaction() as tx:
            ledger.submit(
                tx,
                [
                    ledger.encoder.encode_known(
                        "run.end", run.id, run.id, run_data(forged_run), now
                    ),
                    *ledger.encoder.encode_steps([forged_step], now),
                ],
            )
            tx.execute(
                "UPDATE runs SET status = 'succeeded', reason = NULL WHERE id = ?", (run.id,)
            )
            tx.execute(
                "UPDATE steps SET status = 'ok', name = 'renamed' WHERE run_id = ? AND id = ?",
                (step.run_id, step.id),
            )
        report = verify(ledger)
        assert not report.ok
        said = {p.record: p.message for p in report.problems if p.code == "entry.rewrite"}
        assert 'status "failed" became "succeeded"' in said[run.id]
        assert "became" in said[f"{step.run_id}/{step.id}"]
    finally:
        store.close()


def test_an_attribution_with_an_unrounded_confidence_verifies(store_url: str) -> None:
    """The attribution row keeps the confidence as computed, its entry the record's form
    (rounded to 3 places): no false alarm; a changed confidence is still named."""
    from flightlog.forensics.attribution import why
    from flightlog.forensics.ledger import record_attribution

    store = open_store(store_url)
    try:
        for b in run_batches(rid(5)):
            store.write(b)
        att = dataclasses.replace(why(store, rid(5)), confidence=0.64325)
        assert record_attribution(store, att)
        ledger = attach(store)
        report = verify(ledger)
        assert report.ok, report.summary()
        with store.transaction() as tx:
            tx.execute(
                "UPDATE forensics_attributions SET confidence = 0.9 WHERE run_id = ?", (rid(5),)
            )
        report = verify(ledger)
        assert [p.code for p in report.problems] == ["attribution.changed"]
        assert "confidence (stored 0.9, logged 0.643)" in report.problems[0].message
    finally:
        store.close()


def test_runs_logged_before_entries_named_projects_are_not_false_alarms(store_url: str) -> None:
    """A store logged by a version whose run entries named no project: its runs of other
    projects verify after the upgrade (their entries say nothing of the project), while a
    run moved out of the default project after run entries began naming projects is still
    a changed record."""
    store = open_store(store_url)
    try:
        ledger = attach(store)
        for b in run_batches(rid(5)):
            store.write(b)
        # as such a store holds it: the run in its project, its entry naming none
        with store.transaction() as tx:
            tx.execute("UPDATE runs SET project = ? WHERE id = ?", ("acme", rid(5)))
        report = verify(ledger)
        assert report.ok, report.summary()
        for b in _in_project(run_batches(rid(6)), "acme"):  # this version names it
            store.write(b)
        for b in run_batches(rid(7)):
            store.write(b)
        assert verify(ledger).ok
        with store.transaction() as tx:
            tx.execute("UPDATE runs SET project = ? WHERE id = ?", ("acme", rid(7)))
        report = verify(ledger)
        assert not report.ok
        assert [p.record for p in report.problems] == [rid(7)], report.summary()
        assert "project" in report.problems[0].message
    finally:
        store.close()
