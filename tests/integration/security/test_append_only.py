"""Facts are append-only, enforced by the store on SQLite and PostgreSQL alike: a re-sent run
or step that contradicts what is stored is refused (a conflict, a finding, a ledger entry);
identical re-sends change nothing; the SDK's own updates (start then end, open then closed)
and the server's stand-in runs are the only transitions allowed."""

from __future__ import annotations

import dataclasses

import orjson

from flightlog.app import open_store
from flightlog.ledger import attach
from flightlog.ledger.verify import verify
from flightlog.model import Batch, ErrorInfo, Run, Step
from flightlog.store.facts import CONFLICT_DETECTOR, CONFLICT_KIND, PLACEHOLDER
from tests.integration.ledger._ledger_helpers import payload, rid, run_batches

T = 1_700_000_000_000_000_000


def _entries(store: object, kind: str) -> list[dict[str, object]]:
    attach(store).integrate_pending()  # type: ignore[arg-type]  # PostgreSQL: sequenced later
    with store.read() as tx:  # type: ignore[attr-defined]
        rows = tx.fetchall("SELECT entry FROM ledger_entries WHERE kind = ?", (kind,))
    return [orjson.loads(bytes(r[0])) for r in rows]


def test_a_failed_run_cannot_be_rewritten_as_succeeded(store_url: str) -> None:
    store = open_store(store_url)
    try:
        batches = run_batches(rid(1))
        for b in batches:
            assert store.write(b) == []
        end = batches[-1].runs[0]
        forged = dataclasses.replace(end, status="succeeded", reason=None)
        conflicts = store.write(Batch(runs=[forged]))
        assert [c.record_id for c in conflicts] == [rid(1)]
        assert conflicts[0].fields[0][:3] == ("status", "failed", "succeeded")
        assert "already stored with different content" in conflicts[0].message()
        run = store.get_run(rid(1))
        assert run is not None and run.status == "failed"
        found = [f for f in store.get_findings(rid(1)) if f.detector == CONFLICT_DETECTOR]
        assert len(found) == 1 and "status" in found[0].message
        logged = _entries(store, CONFLICT_KIND)
        assert len(logged) == 1 and logged[0]["id"] == f"{rid(1)}#conflict"
        report = verify(attach(store))
        assert report.ok, report.summary()
    finally:
        store.close()


def test_identical_resend_is_idempotent(store_url: str) -> None:
    store = open_store(store_url)
    try:
        batches = run_batches(rid(2))
        for b in batches:
            store.write(b)
        ledger = attach(store)
        ledger.integrate_pending()  # PostgreSQL: entries are sequenced after the write
        before = ledger.head()[0]
        for b in batches:  # the whole run again, as a spool re-delivers it
            assert store.write(b) == []
        assert ledger.pending() == 0
        assert ledger.head()[0] == before
        assert not [f for f in store.get_findings(rid(2)) if f.detector == CONFLICT_DETECTOR]
    finally:
        store.close()


def test_the_sdk_updates_are_legitimate_transitions(store_url: str) -> None:
    """running -> ended once (runs and steps); a late start record changes nothing."""
    store = open_store(store_url)
    try:
        start = Run(id=rid(3), workflow="w", started_ns=T, owner="team")
        end = dataclasses.replace(start, status="succeeded", ended_ns=T + 10, owner=None)
        open_step = Step(rid(3), "a" * 16, "s", "tool", 1, T + 1, status="running")
        p = payload("out")
        closed_step = dataclasses.replace(
            open_step, status="ok", ended_ns=T + 5, output_hash=p.hash, attributes={"k": 1}
        )
        assert store.write(Batch(runs=[start], steps=[open_step])) == []
        assert store.write(Batch(steps=[closed_step], payloads=[p])) == []
        assert store.write(Batch(runs=[end])) == []
        assert store.write(Batch(runs=[start], steps=[open_step])) == []  # late, stale
        run = store.get_run(rid(3))
        assert run is not None and (run.status, run.owner, run.ended_ns) == (
            "succeeded",
            "team",
            T + 10,
        )
        (step,) = store.get_steps(rid(3))
        assert (step.status, step.output_hash, step.attributes) == ("ok", p.hash, {"k": 1})
        # Closed once: a second, different ending is a rewrite.
        again = dataclasses.replace(closed_step, status="error", error=ErrorInfo("E", "boom"))
        (c,) = store.write(Batch(steps=[again]))
        assert c.step_id == "a" * 16 and {f[0] for f in c.fields} == {"status", "error"}
        # A closed record given a value it did not have is a rewrite too.
        (c2,) = store.write(Batch(steps=[dataclasses.replace(closed_step, model="gpt")]))
        assert c2.fields == (("model", None, "gpt"),)
        # So is changing an attribute, or the output.
        (c3,) = store.write(Batch(steps=[dataclasses.replace(closed_step, attributes={"k": 2})]))
        assert c3.fields[0][0] == "attributes.k"
        assert store.get_steps(rid(3))[0].attributes == {"k": 1}
        assert verify(attach(store)).ok
    finally:
        store.close()


def test_a_placeholder_run_is_replaced_by_the_real_one_once(store_url: str) -> None:
    store = open_store(store_url)
    try:
        stand_in = Run(id=rid(4), workflow="svc", started_ns=T + 5, attributes={PLACEHOLDER: True})
        real = Run(id=rid(4), workflow="claims", started_ns=T, status="failed", ended_ns=T + 9)
        assert store.write(Batch(runs=[stand_in])) == []
        assert store.write(Batch(runs=[stand_in])) == []
        assert store.write(Batch(runs=[real])) == []
        assert store.write(Batch(runs=[stand_in])) == []  # never changes a stored run
        run = store.get_run(rid(4))
        assert run is not None
        assert (run.workflow, run.status, run.started_ns) == ("claims", "failed", T)
        assert PLACEHOLDER not in run.attributes
        (c,) = store.write(Batch(runs=[dataclasses.replace(real, workflow="other")]))
        assert c.fields == (("workflow", "claims", "other"),)
        assert verify(attach(store)).ok
    finally:
        store.close()


def test_conflicts_in_findings_and_ledger_withhold_private_values(store_url: str) -> None:
    store = open_store(store_url)
    try:
        batches = run_batches(rid(5), secret="alice")
        for b in batches:
            store.write(b)
        step = batches[1].steps[0]
        forged = dataclasses.replace(
            step, output_hash=payload("forged").hash, attributes={"sensitive.note": "x"}
        )
        (c,) = store.write(Batch(steps=[forged]))
        text = orjson.dumps(_entries(store, CONFLICT_KIND)).decode()
        text += "".join(f.message for f in store.get_findings(rid(5)))
        assert "output_hash" in text and step.output_hash not in text
        assert "alice" not in text and payload("forged").hash not in text
    finally:
        store.close()


def test_an_ingested_runs_outcome_is_derived_not_a_fact(store_url: str) -> None:
    """Re-derived outcomes of ingested runs replace the stored one; an outcome derived in a
    write that refused one of the run's spans does not."""
    store = open_store(store_url)
    try:
        root = Step(rid(6), "b" * 16, "agent", "agent", 1, T, ended_ns=T + 9, status="ok")
        run = Run(id=rid(6), workflow="w", started_ns=T, ended_ns=T + 9, status="succeeded")
        run = dataclasses.replace(run, source="otlp")
        assert store.write(Batch(runs=[run], steps=[root])) == []
        late = Step(rid(6), "c" * 16, "tool", "tool", 2, T + 1, ended_ns=T + 2, status="error")
        degraded = dataclasses.replace(run, status="degraded", failed_step_id=late.id)
        assert store.write(Batch(runs=[degraded], steps=[late])) == []
        stored = store.get_run(rid(6))
        assert stored is not None and (stored.status, stored.failed_step_id) == (
            "degraded",
            late.id,
        )
        forged_root = dataclasses.replace(root, status="error", error=ErrorInfo("E", "x"))
        forged_run = dataclasses.replace(run, status="failed", failed_step_id=root.id)
        conflicts = store.write(Batch(runs=[forged_run], steps=[forged_root]))
        assert [c.record_id for c in conflicts] == [f"{rid(6)}/{root.id}"]
        stored = store.get_run(rid(6))
        assert stored is not None and stored.status == "degraded"
        assert verify(attach(store)).ok
    finally:
        store.close()
