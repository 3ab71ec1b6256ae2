"""``Store.write`` takes a short path when a batch names each record once and all of them are
new (a recorder's batch), and the general one otherwise (records sent twice in the batch are
folded; records already stored are read, merged, updated). Both must store the same rows,
hand the same records to the write hooks and log the same ledger entries: these tests write
the same records through each path (one run id per path, in one store of each dialect) and
compare."""

from __future__ import annotations

import dataclasses
from typing import Any

from flightlog.app import open_store
from flightlog.ledger import attached
from flightlog.model import Batch, Edge, Finding, Payload, Run, Step
from flightlog.store._sql import rank_by_start
from flightlog.store.base import Tx


def _records(run_id: str) -> Batch:
    """A run, five steps, two edges, a finding and two payloads, as a recorder sends them."""
    run = Run(id=run_id, workflow="w", started_ns=10, status="running", attributes={"a": 1})
    steps = [
        Step(
            run_id=run_id,
            id=f"{i:016x}",
            name=f"s{i}",
            kind="tool",
            index=i,
            started_ns=100 + i,
            ended_ns=200 + i,
            input_hash="1" * 64 if i % 2 else None,
            output_hash="2" * 64,
            attributes={"k": i, "nested": {"b": [1, 2]}},
        )
        for i in (5, 1, 4, 2, 3)  # not in key order: rows go in sorted, hooks see batch order
    ]
    edges = [Edge(run_id, f"{1:016x}", f"{2:016x}"), Edge(run_id, f"{2:016x}", f"{3:016x}")]
    finding = Finding(
        id=f"f-{run_id}", run_id=run_id, detector="d", severity="warning", message="m"
    )
    payloads = [Payload("1" * 64, b'{"q":1}', 7), Payload("2" * 64, b"3", 1)]
    return Batch(runs=[run], steps=steps, edges=edges, payloads=payloads, findings=[finding])


def _stored(store: Any, run_id: str) -> tuple[Any, ...]:
    rec = store.get_record(run_id)

    def plain(x: Any) -> dict[str, Any]:
        d = dataclasses.asdict(x)
        d.pop("run_id", None)
        d.pop("id", None) if isinstance(x, Run) else None
        return d

    return (
        plain(rec.run),
        sorted((s.id, plain(s)) for s in rec.steps),
        sorted((e.source, e.target, e.kind, e.evidence) for e in rec.edges),
        [(f.detector, f.message) for f in rec.findings],
    )


def _ledger(store: Any, run_id: str) -> list[tuple[str, str]]:
    ledger = attached(store)
    assert ledger is not None
    ledger.integrate_pending()  # PostgreSQL: writers leave entries pending
    with store.read() as tx:
        rows = tx.fetchall(
            "SELECT kind, record_id FROM ledger_entries WHERE run_id = ? ORDER BY seq", (run_id,)
        )
    return [(k, r.replace(run_id, "RUN")) for k, r in rows]


def test_new_records_store_the_same_through_either_path(db_url: str) -> None:
    store = open_store(db_url)
    applied: list[tuple[str, list[str], int, int]] = []

    def hook(tx: Tx, batch: Batch) -> None:
        run_id = batch.steps[0].run_id
        applied.append((run_id, [s.id for s in batch.steps], len(batch.edges), len(batch.findings)))

    store.add_write_hook(hook)
    fast, folded = "a" * 32, "b" * 32
    store.write(_records(fast))  # each record once, all new
    twice = _records(folded)
    twice.steps = [s for s in twice.steps for s in (s, dataclasses.replace(s))]  # sent twice
    twice.edges = twice.edges * 2
    store.write(twice)
    assert _stored(store, fast) == _stored(store, folded)
    order = [f"{i:016x}" for i in (5, 1, 4, 2, 3)]
    assert applied == [(fast, order, 2, 1), (folded, order, 2, 1)]
    assert _ledger(store, fast) == _ledger(store, folded)
    assert len(_ledger(store, fast)) == 1 + 5 + 2 + 1  # the run, steps, edges, finding
    store.close()


def test_a_batch_partly_stored_keeps_what_is_stored_and_adds_the_rest(db_url: str) -> None:
    """Some keys already stored: on SQLite the all-new insert is undone (savepoint) and the
    batch goes the general way; nothing is stored twice, a changed step is updated, the
    hooks get only what changed, in batch order."""
    store = open_store(db_url)
    fast, mixed = "c" * 32, "d" * 32
    store.write(_records(fast))
    first = _records(mixed)
    running = dataclasses.replace(first.steps[1], status="running", ended_ns=None)  # step 1
    first.steps = [running, first.steps[3]]  # step 1 (running) and step 2 (final)
    first.edges = first.edges[:1]
    first.payloads = first.payloads[:1]
    first.findings = []
    store.write(first)
    applied: list[Batch] = []
    store.add_write_hook(lambda tx, batch: applied.append(batch))
    store.write(_records(mixed))
    assert _stored(store, fast) == _stored(store, mixed)
    (got,) = applied
    # Step 2 was stored as it is now: unchanged, not handed on; step 1 ended: updated.
    assert [s.id for s in got.steps] == [f"{i:016x}" for i in (5, 1, 4, 3)]
    assert [(e.source, e.target) for e in got.edges] == [(f"{2:016x}", f"{3:016x}")]
    assert [f.id for f in got.findings] == [f"f-{mixed}"]
    with store.read() as tx:
        (n,) = tx.fetchone("SELECT COUNT(*) FROM steps WHERE run_id = ?", (mixed,)) or (0,)
    assert n == 5
    store.close()


def test_reorder_ranks_steps_by_start_then_id_as_python_does(db_url: str) -> None:
    """``write(..., reorder=...)`` ranks a run's steps inside the database; the ranks are
    ``rank_by_start``'s (start time, then id compared as code points: ties, mixed case,
    non-ASCII ids), batch after batch, late steps included."""
    store = open_store(db_url)
    run_id = "e" * 32
    store.write(Batch(runs=[Run(id=run_id, workflow="w", started_ns=1)]))
    ids = ["b", "B", "a", "_x", "Z9", "é", "e", "aa", "A0", "0"]
    batches = [ids[:4], ids[4:7], ids[7:]]
    for n, part in enumerate(batches):
        steps = [
            Step(run_id=run_id, id=sid, name=sid, kind="tool", index=0, started_ns=50 - 10 * n)
            if i % 2
            else Step(run_id=run_id, id=sid, name=sid, kind="tool", index=0, started_ns=100)
            for i, sid in enumerate(part)
        ]
        store.write(Batch(steps=steps), reorder=[run_id])
        stored = store.get_steps(run_id)
        expected = rank_by_start((s.id, s.started_ns) for s in stored)
        assert {s.id: s.index for s in stored} == expected
        assert sorted(expected.values()) == list(range(1, len(stored) + 1))
    store.close()


def _edge_entries(store: Any, run_id: str) -> list[dict[str, Any]]:
    import orjson

    ledger = attached(store)
    assert ledger is not None
    ledger.integrate_pending()
    with store.read() as tx:
        rows = tx.fetchall(
            "SELECT entry FROM ledger_entries WHERE run_id = ? AND kind = 'edge' ORDER BY seq",
            (run_id,),
        )
    return [orjson.loads(bytes(r[0]))["data"] for r in rows]


def test_ledger_logs_each_edge_as_stored_once(db_url: str) -> None:
    """An edge's entry is the stored row: the first of a key sent twice in one batch, and
    nothing for a key re-sent later with other evidence (it is not rewritten)."""
    store = open_store(db_url)
    run_id = "f" * 32
    a, b, c = (f"{i:016x}" for i in (1, 2, 3))
    store.write(
        Batch(
            runs=[Run(id=run_id, workflow="w", started_ns=1)],
            edges=[
                Edge(run_id, a, b, "data", "content", "x"),
                Edge(run_id, a, b, "data", "substring", "y"),  # same key: not stored
            ],
        )
    )
    store.write(
        Batch(
            edges=[
                Edge(run_id, a, b, "data", "declared", None),  # stored already: left as it is
                Edge(run_id, b, c, "handoff", "declared", "graph.node.parent_id"),
            ]
        )
    )
    stored = {(e.source, e.target, e.kind): (e.evidence, e.detail) for e in store.get_edges(run_id)}
    assert stored == {
        (a, b, "data"): ("content", "x"),
        (b, c, "handoff"): ("declared", "graph.node.parent_id"),
    }
    logged = [
        (d["source"], d["target"], d["kind"], d["evidence"], d["detail"])
        for d in _edge_entries(store, run_id)
    ]
    assert logged == [
        (a, b, "data", "content", "x"),
        (b, c, "handoff", "declared", "graph.node.parent_id"),
    ]
    store.close()


def test_ledger_logs_an_edge_with_a_nul_as_stored(db_url: str) -> None:
    """PostgreSQL text holds no NUL (the store writes U+FFFD for it): an edge whose text
    has one is logged as stored, so the ledger verifies (it named the edge as changed)."""
    from flightlog.ledger.verify import verify

    store = open_store(db_url)
    run_id = "e" * 32
    a, b = (f"{i:016x}" for i in (1, 2))
    store.write(
        Batch(
            runs=[Run(id=run_id, workflow="w", started_ns=1)],
            edges=[Edge(run_id, a, b, "data", "declared", "x\x00y")],
        )
    )
    (edge,) = store.get_edges(run_id)
    (logged,) = _edge_entries(store, run_id)
    assert logged["detail"] == edge.detail
    ledger = attached(store)
    assert ledger is not None
    report = verify(ledger)
    assert report.ok, report.problems
    store.close()


def test_ledger_logs_a_step_with_a_nul_as_stored(db_url: str) -> None:
    """A step whose text has a NUL (an OTLP span's name, say) is logged as stored (U+FFFD on
    PostgreSQL), so the ledger verifies (it named the step's name as changed)."""
    from flightlog.ledger.verify import verify

    store = open_store(db_url)
    run_id = "d" * 32
    store.write(
        Batch(
            runs=[Run(run_id, "w", 1, status="succeeded", ended_ns=9)],
            steps=[
                Step(run_id, "1" * 16, "se\x00arch", "tool", 1, 2, ended_ns=3, agent="a\x00b"),
                Step(run_id, "2" * 16, "plain", "tool", 2, 4, ended_ns=5),
            ],
        )
    )
    ledger = attached(store)
    assert ledger is not None
    ledger.integrate_pending()
    report = verify(ledger)
    assert report.ok, report.problems
    store.close()
