"""Two writers (two servers) storing spans of the same trace at once: the run's stored data
edges are what one server receiving all the spans would store.

Each server infers the data edges its new spans open with the run's stored spans before its
write transaction (``flightlog.server.ingest.derive``). Step A (whose output is the value)
goes to server 1, step B (whose input carries it) to server 2; both read the run before
either commits, so neither sees the other's step: before the store re-inferred the edges of
such a run inside the write, under the run's row lock, the edge A->B was never stored.

Real stores (two handles on one SQLite file, or on one PostgreSQL database), with the audit
ledger attached: each edge is logged once and the log verifies.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from flightlog.app import open_store
from flightlog.model import Batch, Edge, Run, Step
from flightlog.payload import encode_value, make_payload
from flightlog.status import apply_derived_status
from tests.unit.store.concurrent import (
    check_edge_ledger,
    derive_for,
    hold_for,
    stand_in,
    write_derived,
)

RUN = "8" * 32
ROOT, A, B = "a" * 16, "b" * 16, "c" * 16
VALUE = {"policy": "P-1", "holder": "Ada Lovelace", "limit": 250000}


def _root_batch() -> Batch:
    root = Step(RUN, ROOT, "agent", "agent", 1, 100, ended_ns=1000)
    run = Run(id=RUN, workflow="agent", started_ns=100, ended_ns=1000, source="otlp")
    apply_derived_status(run, [root])
    return Batch(runs=[run], steps=[root])


def _a_batch() -> Batch:
    """Step A: a tool that returned the value."""
    out = make_payload(encode_value(VALUE))
    inp = make_payload(encode_value({"query": "policy of Ada"}))
    a = Step(RUN, A, "lookup", "tool", 1, 200, parent_id=ROOT, ended_ns=300)
    a.input_hash, a.output_hash = inp.hash, out.hash
    return Batch(runs=[stand_in(RUN, 200)], steps=[a], payloads=[inp, out])


def _b_batch() -> Batch:
    """Step B: started after A ended, its input carries A's output."""
    inp = make_payload(encode_value({"record": VALUE, "task": "summarise"}))
    out = make_payload(encode_value("A summary of the policy of Ada Lovelace."))
    b = Step(RUN, B, "summarise", "llm", 1, 400, parent_id=ROOT, ended_ns=500)
    b.input_hash, b.output_hash = inp.hash, out.hash
    return Batch(runs=[stand_in(RUN, 400)], steps=[b], payloads=[inp, out])


def _edges(store: Any) -> set[tuple[str, str, str]]:
    return {(e.source, e.target, e.kind) for e in store.get_record(RUN).edges}


def _full_edges(store: Any) -> set[tuple[str, str, str, str, str | None]]:
    return {(e.source, e.target, e.kind, e.evidence, e.detail) for e in store.get_record(RUN).edges}


def _one_server_edges(tmp_path: Path) -> set[tuple[str, str, str, str, str | None]]:
    """What one server receiving the root, then A, then B stores."""
    store = open_store(f"sqlite:///{tmp_path / 'reference.db'}")
    try:
        for batch in (_root_batch(), _a_batch(), _b_batch()):
            write_derived(store, derive_for(store, batch, RUN), RUN)
        return _full_edges(store)
    finally:
        store.close()


@pytest.mark.parametrize("a_first", [True, False], ids=["A-commits-first", "B-commits-first"])
def test_two_writers_that_read_before_either_commits_store_the_edge(
    db_url: str, a_first: bool, tmp_path: Path
) -> None:
    one, two = open_store(db_url), open_store(db_url)
    try:
        write_derived(one, derive_for(one, _root_batch(), RUN), RUN)
        # Both servers read the run (root only) before either writes.
        a, b = derive_for(one, _a_batch(), RUN), derive_for(two, _b_batch(), RUN)
        assert not any(e.kind == "data" for e in [*a[0].edges, *b[0].edges])  # nor saw the other
        for store, batch in ((one, a), (two, b)) if a_first else ((two, b), (one, a)):
            write_derived(store, batch, RUN)
        assert (A, B, "data") in _edges(one)
        assert _full_edges(one) == _one_server_edges(tmp_path)
        check_edge_ledger(one, RUN)
    finally:
        two.close()
        one.close()


def test_one_writer_stores_the_same_edges(db_url: str) -> None:
    """The reference: one server receiving the spans one request after the other."""
    store = open_store(db_url)
    try:
        for batch in (_root_batch(), _a_batch(), _b_batch()):
            write_derived(store, derive_for(store, batch, RUN), RUN)
        assert (A, B, "data") in _edges(store)
        check_edge_ledger(store, RUN)
    finally:
        store.close()


@pytest.mark.parametrize("a_first", [True, False], ids=["A-commits-first", "B-commits-first"])
def test_second_writer_waiting_inside_the_first_stores_the_edge(
    db_url: str, a_first: bool, tmp_path: Path
) -> None:
    """The second writer starts its write while the first's transaction is open (PostgreSQL:
    it waits on the run's row lock; SQLite: on the write lock), then goes on."""
    one, two = open_store(db_url), open_store(db_url)
    got: dict[str, Any] = {}
    try:
        write_derived(one, derive_for(one, _root_batch(), RUN), RUN)
        a, b = derive_for(one, _a_batch(), RUN), derive_for(two, _b_batch(), RUN)
        first, second = (a, b) if a_first else (b, a)
        first_store, second_store = (one, two) if a_first else (two, one)

        def run_second() -> None:
            try:
                write_derived(second_store, second, RUN)
                got["done"] = True
            except BaseException as exc:  # re-raised below
                got["error"] = exc

        thread = threading.Thread(target=run_second)
        first_store.add_write_hook(hold_for(one, thread, lambda: "done" in got))
        write_derived(first_store, first, RUN)
        thread.join(60)
        if "error" in got:
            raise got["error"]
        assert got.get("done")
        assert (A, B, "data") in _edges(one)
        assert _full_edges(one) == _one_server_edges(tmp_path)
        check_edge_ledger(one, RUN)
    finally:
        two.close()
        one.close()


@pytest.mark.parametrize(
    "declared",
    [("data", "link", "follows_from"), ("handoff", "declared", None)],
    ids=["span-link", "edge-event"],
)
@pytest.mark.parametrize("a_first", [True, False], ids=["A-commits-first", "B-commits-first"])
def test_edges_a_span_declared_stay_when_the_run_is_inferred_again(
    db_url: str, a_first: bool, declared: tuple[str, str, str | None]
) -> None:
    """B's span declares an edge from the root (an OpenTelemetry span link, or an edge
    event): not inferred, so not replaced when the store infers the run's edges again."""
    kind, evidence, detail = declared
    one, two = open_store(db_url), open_store(db_url)
    try:
        write_derived(one, derive_for(one, _root_batch(), RUN), RUN)
        b_batch = _b_batch()
        b_batch.edges.append(Edge(RUN, ROOT, B, kind, evidence, detail))
        a, b = derive_for(one, _a_batch(), RUN), derive_for(two, b_batch, RUN)
        for store, batch in ((one, a), (two, b)) if a_first else ((two, b), (one, a)):
            write_derived(store, batch, RUN)
        assert (ROOT, B, kind, evidence, detail) in _full_edges(one)
        assert (A, B, "data") in _edges(one)
        check_edge_ledger(one, RUN)
    finally:
        two.close()
        one.close()
