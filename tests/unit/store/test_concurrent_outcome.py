"""Two writers (two servers) storing spans of the same trace at once: the run's stored outcome
is what all its stored spans imply, whoever commits last.

Each writer sends the outcome it derived from what it had seen (the server derives before
writing). Writer A has the root span and an OK step: "succeeded". Writer B has a late step
that ended in error with nothing after it, and only a stand-in for the run: from all three
spans the run failed at that step. Before the store derived the outcome inside the write,
under the run's row lock, the stored run said "succeeded" in every order below: A's stale
outcome overwrote B's evidence, or B's stand-in changed nothing.

Real stores (two handles on one SQLite file, or on one PostgreSQL database), with the audit
ledger attached: the last logged record of the run carries the stored outcome and the log
verifies.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Any

import pytest

from flightlog.app import open_store
from flightlog.ledger import attached
from flightlog.ledger.verify import verify
from flightlog.model import Batch, ErrorInfo, Run, Step
from flightlog.status import apply_derived_status
from tests.unit.store.concurrent import hold_for, stand_in

RUN = "7" * 32
ROOT, LLM, TOOL = "a" * 16, "b" * 16, "c" * 16


def _root_batch() -> Batch:
    """Writer A: the root span (its run record) and an OK LLM step; outcome as A saw it."""
    root = Step(
        run_id=RUN,
        id=ROOT,
        name="agent",
        kind="agent",
        index=1,
        started_ns=100,
        ended_ns=1000,
        status="ok",
    )
    llm = Step(
        run_id=RUN,
        id=LLM,
        name="chat",
        kind="llm",
        index=2,
        started_ns=110,
        ended_ns=150,
        parent_id=ROOT,
        status="ok",
    )
    run = Run(id=RUN, workflow="agent", started_ns=100, ended_ns=1000, source="otlp")
    apply_derived_status(run, [root, llm])
    assert run.status == "succeeded"  # what A derived: stale once B's span is stored
    return Batch(runs=[run], steps=[root, llm])


def _late_batch() -> Batch:
    """Writer B: a tool step that ended in error, last; the run only as a stand-in."""
    tool = Step(
        run_id=RUN,
        id=TOOL,
        name="lookup",
        kind="tool",
        index=1,
        started_ns=500,
        ended_ns=900,
        parent_id=ROOT,
        status="error",
        error=ErrorInfo(type="KeyError", message="policy P-1 not found"),
    )
    return Batch(runs=[stand_in(RUN, 500)], steps=[tool])


def _write(store: Any, batch: Batch) -> list[str]:
    rederived: list[str] = []
    store.write(batch, reorder=[RUN], rederived=rederived)
    return rederived


def _second_waits_on_first(
    db_url: str, first: Batch, second: Batch
) -> tuple[Any, list[str], list[str]]:
    """Writer 1 writes ``first``; inside its transaction (a write hook), writer 2 starts
    writing ``second`` and gets as far as it can (PostgreSQL: it waits on writer 1's rows;
    SQLite: on the write lock), then writer 1 commits and writer 2 goes on."""
    one, two = open_store(db_url), open_store(db_url)
    got: dict[str, Any] = {}

    def run_two() -> None:
        try:
            got["two"] = _write(two, second)
        except BaseException as exc:  # re-raised below
            got["error"] = exc

    thread = threading.Thread(target=run_two)
    one.add_write_hook(hold_for(one, thread, lambda: "two" in got))
    got["one"] = _write(one, first)
    thread.join(60)
    two.close()
    if "error" in got:
        raise got["error"]
    return one, got["one"], got["two"]


def _check(store: Any) -> None:
    record = store.get_record(RUN)
    run = record.run
    assert {s.id for s in record.steps} == {ROOT, LLM, TOOL}
    # What all stored spans imply, literally and by the derivation itself
    assert (run.status, run.failed_step_id) == ("failed", TOOL)
    assert run.reason == "policy P-1 not found"
    assert run.error is not None and run.error.type == "KeyError"
    again = dataclasses.replace(run, status="unknown")
    apply_derived_status(again, record.steps)
    assert (again.status, again.failed_step_id, again.reason, again.error) == (
        run.status,
        run.failed_step_id,
        run.reason,
        run.error,
    )
    assert {s.id: s.index for s in record.steps} == {ROOT: 1, LLM: 2, TOOL: 3}
    # The ledger's last record of the run says the same, and the log verifies
    ledger = attached(store)
    assert ledger is not None
    ledger.integrate_pending()
    with store.read() as tx:
        rows = tx.fetchall(
            "SELECT entry FROM ledger_entries WHERE record_id = ? AND kind = 'run.end' "
            "ORDER BY seq",
            (RUN,),
        )
    assert rows, "the run's end was not logged"
    last = json.loads(bytes(rows[-1][0]))
    data = last.get("data", last)
    assert data["status"] == "failed" and data["failed_step_id"] == TOOL, last
    report = verify(ledger)  # type: ignore[arg-type]
    assert report.ok, report.summary()


@pytest.mark.parametrize("first_root", [True, False], ids=["root-commits-first", "late-first"])
def test_concurrent_writers_store_the_outcome_of_all_spans(db_url: str, first_root: bool) -> None:
    first, second = (_root_batch(), _late_batch()) if first_root else (_late_batch(), _root_batch())
    store, one, two = _second_waits_on_first(db_url, first, second)
    try:
        _check(store)
        # The writer that committed last changed the outcome A sent: it reports the run
        # (the server runs its run-end work again).
        assert two == [RUN]
    finally:
        store.close()


@pytest.mark.parametrize("first_root", [True, False], ids=["root-first", "late-first"])
def test_one_writer_after_the_other_stores_the_outcome_of_all_spans(
    db_url: str, first_root: bool
) -> None:
    """The same through one handle, one write after the other: the late span's writer
    sends no outcome (the run's root is not in its batch), and the store derives it."""
    store = open_store(db_url)
    try:
        for batch in (
            (_root_batch(), _late_batch()) if first_root else (_late_batch(), _root_batch())
        ):
            _write(store, batch)
        _check(store)
        # The same spans sent again change nothing and are not logged again.
        with store.read() as tx:
            (before,) = tx.fetchone("SELECT COUNT(*) FROM ledger_entries") or (0,)
        assert _write(store, _root_batch()) == [] and _write(store, _late_batch()) == []
        ledger = attached(store)
        assert ledger is not None
        ledger.integrate_pending()
        with store.read() as tx:
            (after,) = tx.fetchone("SELECT COUNT(*) FROM ledger_entries") or (0,)
        assert after == before
        _check(store)
    finally:
        store.close()
