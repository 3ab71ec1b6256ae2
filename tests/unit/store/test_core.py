"""Queries on the core tables inside a caller's transaction (``flightlog.store.core``), on
SQLite then PostgreSQL (``db_url``)."""

from __future__ import annotations

import pytest

from flightlog.model import Batch, Edge, Finding, Payload, Run, Step
from flightlog.store import core, open_store

A, B, C = "a" * 32, "b" * 32, "c" * 32
H1, H2 = "1" * 64, "2" * 64


def _batch() -> Batch:
    return Batch(
        runs=[
            Run(
                A,
                "wf",
                100,
                status="failed",
                ended_ns=150,
                owner="ops",
                project="p1",
                input_hash=H1,
            ),
            Run(B, "wf", 200, status="degraded", ended_ns=None, project="p2"),
            Run(C, "wf", 300, status="succeeded", ended_ns=350, source="replay", project="p1"),
        ],
        steps=[
            Step(A, "s" * 16, "search", "tool", 1, 101, owner="search-team", output_hash=H2),
            Step(B, "t" * 16, "search", "retrieval", 1, 201),
        ],
        edges=[Edge(A, "s" * 16, "s" * 16, "data")],
        payloads=[Payload(H1, b'"q"', 3), Payload(H2, b'"r"', 3)],
        findings=[Finding("f" * 32, A, "empty_output", "error", "empty", step_id="s" * 16)],
    )


@pytest.fixture
def store(db_url: str):  # type: ignore[no-untyped-def]
    s = open_store(db_url)
    s.write(_batch())
    yield s
    s.close()


def test_projects_owners_and_outcomes(store) -> None:  # type: ignore[no-untyped-def]
    with store.read() as tx:
        assert core.run_projects(tx, [A, B, "0" * 32, ""]) == {A: "p1", B: "p2"}
        assert core.payload_in_project(tx, H2, "p1")  # through A's step
        assert not core.payload_in_project(tx, H2, "p2")
        assert core.owners(tx) == {"ops", "search-team"}
        # The replayed run is not an outcome.
        assert core.status_counts(tx, "wf", 0, 1000) == {"failed": 1, "degraded": 1}
        assert core.latest_run(tx, "wf", ("failed", "degraded"), 1000) == B
        assert core.latest_run(tx, "wf", ("failed", "degraded"), 200) == A
        assert core.latest_run(tx, "other", ("failed",), 1000) is None
        assert core.latest_step_kind(tx, "wf", "search", 1000) == "retrieval"
        assert core.latest_step_kind(tx, "wf", "search", 200) == "tool"
        assert core.ended_ns(tx, [A, B]) == {A: 150, B: None}


def test_redaction_and_retention_changes(store) -> None:  # type: ignore[no-untyped-def]
    with store.transaction() as tx:
        rows = core.redactable_rows(tx, A)
        assert rows["runs"][0]["input_hash"] == H1 and rows["steps"][0]["id"] == "s" * 16
        assert rows["findings"][0]["message"] == "empty"
        core.update_record(tx, "runs", {"id": A}, {"input_hash": None, "reason": "[redacted]"})
        with pytest.raises(ValueError, match="not redactable"):
            core.update_record(tx, "runs", {"id": A}, {"workflow": "x"})
        assert core.payload_referenced_elsewhere(tx, H2, B) is True
        assert core.payload_referenced_elsewhere(tx, H2, A) is False
        core.delete_payload(tx, H1)
        assert set(core.runs_started_before(tx, 250)) == {A, B}
        steps, findings, edges = core.record_keys(tx, A)
        assert (steps, findings, edges) == (["s" * 16], ["f" * 32], [("s" * 16, "s" * 16, "data")])
        core.delete_run(tx, A)
    assert store.get_run(A) is None and store.get_steps(A) == []
    assert store.get_payloads([H1, H2]) == {H2: b'"r"'}
    assert store.get_run(B) is not None


def test_records_in_bulk_are_get_record_of_each(store) -> None:  # type: ignore[no-untyped-def]
    """``core.records`` gives what ``get_record`` gives run by run (steps in index order, an
    ingested run's agents inherited from their parents, edges, findings), and
    ``payloads_by_hash`` what ``get_payloads`` gives; runs not stored are absent."""
    d = "d" * 32
    root, child, late = "r" * 16, "u" * 16, "v" * 16
    store.write(
        Batch(
            runs=[Run(d, "wf", 400, status="succeeded", ended_ns=450, source="otlp")],
            steps=[
                Step(d, late, "answer", "llm", 3, 430, parent_id=root),
                Step(d, root, "agent", "agent", 1, 401, agent="claims-agent"),
                Step(d, child, "search", "tool", 2, 410, parent_id=root, output_hash=H1),
            ],
            findings=[
                Finding("g" * 32, d, "latency", "warning", "slow", step_id=child, created_ns=9),
                Finding("e" * 32, d, "errors", "error", "boom", step_id=late, created_ns=5),
            ],
        )
    )
    wanted = [A, B, C, d, "0" * 32]
    with store.read() as tx:
        got = core.records(tx, wanted)
        payloads = core.payloads_by_hash(tx, [H1, H2, "9" * 64, ""])
    assert set(got) == {A, B, C, d}
    for run_id, record in got.items():
        assert record == store.get_record(run_id)
    assert [s.agent for s in got[d].steps] == ["claims-agent"] * 3  # inherited when read
    assert [s.index for s in got[d].steps] == [1, 2, 3]
    assert got[A].edges == store.get_edges(A) and got[A].edges
    assert [f.id for f in got[d].findings] == ["e" * 32, "g" * 32]
    assert payloads == store.get_payloads([H1, H2, "9" * 64]) == {H1: b'"q"', H2: b'"r"'}


def test_records_order_steps_as_index_start_then_id(store) -> None:  # type: ignore[no-untyped-def]
    """Steps come in (index, start, id) order, ties on index and start broken by id as the
    database orders ids (read in key order, then sorted stably by index and start)."""
    e = "e" * 32
    ids = ["Bb" * 8, "aa" * 8, "cc" * 8, "A_" * 8, "b-" * 8, "zz" * 8]
    store.write(
        Batch(
            runs=[Run(e, "wf", 500, status="succeeded", ended_ns=550)],
            steps=[
                Step(e, ids[0], "x", "tool", 2, 510, output_hash=H1),
                Step(e, ids[1], "x", "tool", 2, 510),
                Step(e, ids[2], "x", "tool", 1, 520, input_hash=H2),
                Step(e, ids[3], "x", "tool", 2, 505),
                Step(e, ids[4], "x", "tool", 2, 510),
                Step(e, ids[5], "x", "tool", 1, 501),
            ],
        )
    )
    with store.read() as tx:
        want = [
            str(r[0])
            for r in tx.fetchall(
                "SELECT id FROM steps WHERE run_id = ? ORDER BY idx, started_ns, id", (e,)
            )
        ]
        plain = core.records(tx, [e])[e]
        joined = core.records(tx, [e], payloads={})[e]
    assert want[:3] == [ids[5], ids[2], ids[3]]  # index, then start
    assert [s.id for s in plain.steps] == want == [s.id for s in joined.steps]


def test_records_with_payloads_read_in_the_steps_query(store) -> None:  # type: ignore[no-untyped-def]
    """``core.records(payloads=...)`` gives the same records and fills the dict with what
    ``get_payloads`` gives for the steps' input and output addresses: shared payloads once,
    addresses whose payload is not stored absent, the run's own payloads not read."""
    e = "e" * 32
    H3, missing = "3" * 64, "9" * 64
    store.write(
        Batch(
            runs=[Run(e, "wf", 500, status="succeeded", ended_ns=550, input_hash=H3)],
            steps=[
                Step(e, "w" * 16, "plan", "llm", 1, 501, input_hash=H1, output_hash=H2),
                Step(e, "x" * 16, "act", "tool", 2, 510, input_hash=H2, output_hash=missing),
                Step(e, "y" * 16, "none", "tool", 3, 520),
            ],
            payloads=[Payload(H3, b'"run input"', 11)],
        )
    )
    wanted = [A, B, C, e, "0" * 32]
    with store.read() as tx:
        plain = core.records(tx, wanted)
        payloads: dict[str, bytes] = {}
        got = core.records(tx, wanted, payloads=payloads)
    assert got == plain and list(got) == list(plain)
    hashes = {
        h for r in plain.values() for s in r.steps for h in (s.input_hash, s.output_hash) if h
    }
    assert payloads == store.get_payloads(sorted(hashes)) == {H1: b'"q"', H2: b'"r"'}
    assert all(type(v) is bytes for v in payloads.values())


def test_failed_among_counts_stored_failed_runs_once(db_url: str) -> None:
    store = open_store(db_url)
    store.write(_batch())
    extra = [Run(f"{i:032x}", "wf", 400 + i, status="failed", ended_ns=500) for i in range(600)]
    store.write(Batch(runs=extra))
    ids = [A, B, C, A, "f" * 32, *(r.id for r in extra)]  # a repeat, an unknown run, 2 reads
    with store.read() as tx:
        assert core.failed_among(tx, ids) == 601
        assert core.failed_among(tx, [B, C]) == 0
        assert core.failed_among(tx, []) == 0
    store.close()
