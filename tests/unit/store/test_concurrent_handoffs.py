"""Two writers (two servers) storing spans of the same trace at once: the run's stored
hand-off edges are what one server receiving all the spans would store.

A workflow hands over from the agent ``triage`` to the agent ``billing`` (OpenInference graph
nodes: ``billing``'s ``graph.node.parent_id`` names ``triage``; ``handoff_edges``). Each
server links the hand-offs its new spans open with the run's stored spans before its write
transaction (``flightlog.server.ingest.derive``). One agent's span goes to server 1, the
other's to server 2; both read the run before either commits, so neither sees the other's
span: before the store linked the hand-offs of such a run again inside the write, under the
run's row lock, the edge triage -> billing was never stored.

Real stores (two handles on one SQLite file, or on one PostgreSQL database), with the audit
ledger attached: each edge is logged once and the log verifies.
"""

from __future__ import annotations

from typing import Any

import pytest

from flightlog.app import open_store
from flightlog.model import Batch, Run, Step
from flightlog.status import apply_derived_status
from tests.unit.store.concurrent import check_edge_ledger, derive_for, stand_in, write_derived

RUN = "9" * 32
ROOT, TRIAGE, BILLING, TRIAGE2 = "a" * 16, "b" * 16, "c" * 16, "d" * 16
HANDOFF = ("handoff", "declared", "graph.node.parent_id")


def _root_batch() -> Batch:
    root = Step(RUN, ROOT, "workflow", "chain", 1, 100, ended_ns=1000)
    run = Run(id=RUN, workflow="workflow", started_ns=100, ended_ns=1000, source="otlp")
    apply_derived_status(run, [root])
    return Batch(runs=[run], steps=[root])


def _agent(step_id: str, start: int, node: str, parent: str | None = None) -> Step:
    attrs: dict[str, Any] = {"graph.node.id": node}
    if parent is not None:
        attrs["graph.node.parent_id"] = parent
    return Step(
        RUN, step_id, node, "agent", 1, start, parent_id=ROOT, ended_ns=start + 50, attributes=attrs
    )


def _triage_batch(step_id: str = TRIAGE, start: int = 200) -> Batch:
    return Batch(runs=[stand_in(RUN, start)], steps=[_agent(step_id, start, "triage")])


def _billing_batch() -> Batch:
    return Batch(runs=[stand_in(RUN, 400)], steps=[_agent(BILLING, 400, "billing", "triage")])


def _handoffs(store: Any) -> set[tuple[str, str, str, str, str | None]]:
    return {
        (e.source, e.target, e.kind, e.evidence, e.detail)
        for e in store.get_record(RUN).edges
        if e.kind == "handoff"
    }


@pytest.mark.parametrize("root_stored", [True, False], ids=["root-stored", "run-new"])
@pytest.mark.parametrize(
    "triage_first", [True, False], ids=["triage-commits-first", "billing-commits-first"]
)
def test_two_writers_that_read_before_either_commits_store_the_hand_off(
    db_url: str, triage_first: bool, root_stored: bool
) -> None:
    one, two = open_store(db_url), open_store(db_url)
    try:
        if root_stored:
            write_derived(one, derive_for(one, _root_batch(), RUN), RUN)
        # Both servers read the run before either writes.
        t, b = derive_for(one, _triage_batch(), RUN), derive_for(two, _billing_batch(), RUN)
        assert not any(e.kind == "handoff" for e in [*t[0].edges, *b[0].edges])
        for store, batch in ((one, t), (two, b)) if triage_first else ((two, b), (one, t)):
            write_derived(store, batch, RUN)
        assert _handoffs(one) == {(TRIAGE, BILLING, *HANDOFF)}
        check_edge_ledger(one, RUN)
    finally:
        two.close()
        one.close()


@pytest.mark.parametrize(
    "order", ["early-late-billing", "billing-early-late", "late-early-billing"]
)
def test_the_hand_off_comes_from_the_latest_node_stored_when_the_target_is(
    db_url: str, order: str
) -> None:
    """Two ``triage`` spans (200 and 300) at two servers, ``billing`` (400) at a third, all
    read before any commits: as one server receiving them in commit order, the hand-off comes
    from the latest ``triage`` span stored when ``billing``'s writer takes the run's lock,
    and an edge once stored stays (facts are not rewritten)."""
    stores = [open_store(db_url) for _ in range(3)]
    try:
        write_derived(stores[0], derive_for(stores[0], _root_batch(), RUN), RUN)
        derived = {
            "early": derive_for(stores[0], _triage_batch(TRIAGE, 200), RUN),
            "late": derive_for(stores[1], _triage_batch(TRIAGE2, 300), RUN),
            "billing": derive_for(stores[2], _billing_batch(), RUN),
        }
        names = order.split("-")
        for n, name in enumerate(names):
            write_derived(stores[n], derived[name], RUN)
        expected = {
            "early-late-billing": {(TRIAGE2, BILLING, *HANDOFF)},
            "billing-early-late": {(TRIAGE, BILLING, *HANDOFF), (TRIAGE2, BILLING, *HANDOFF)},
            "late-early-billing": {(TRIAGE2, BILLING, *HANDOFF)},
        }[order]
        assert _handoffs(stores[0]) == expected
        check_edge_ledger(stores[0], RUN)
    finally:
        for s in stores:
            s.close()


def test_one_server_links_a_hand_off_whose_spans_came_in_two_requests_of_one_write(
    db_url: str,
) -> None:
    """The writer thread writes the requests waiting in one batch; each request linked the
    hand-offs among its own spans (``decode``), so those between the requests' spans of a
    run not stored yet are linked when the batch is derived."""
    store = open_store(db_url)
    try:
        first, second = _triage_batch(), _billing_batch()
        root = _root_batch()
        merged = Batch(
            runs=[*root.runs, *first.runs, *second.runs],
            steps=[*root.steps, *first.steps, *second.steps],
        )
        write_derived(store, derive_for(store, merged, RUN), RUN)
        assert _handoffs(store) == {(TRIAGE, BILLING, *HANDOFF)}
    finally:
        store.close()


def test_one_writer_stores_the_same_hand_offs(db_url: str) -> None:
    """The reference: one server receiving the spans one request after the other."""
    store = open_store(db_url)
    try:
        for batch in (_root_batch(), _triage_batch(), _billing_batch()):
            write_derived(store, derive_for(store, batch, RUN), RUN)
        assert _handoffs(store) == {(TRIAGE, BILLING, *HANDOFF)}
        check_edge_ledger(store, RUN)
    finally:
        store.close()


def test_a_hand_off_missing_between_steps_stored_earlier_is_linked_by_the_next_graph_span(
    db_url: str,
) -> None:
    """Hand-offs are linked over every stored step of the run, not only those touching the
    batch's spans: one that a writer which did not link them left out (an older server)
    is stored with the next span of the run that declares a graph node."""
    store = open_store(db_url)
    try:
        for batch in (_root_batch(), _triage_batch(), _billing_batch()):
            store.write(batch, reorder=[RUN])  # linked by nobody
        assert _handoffs(store) == set()
        refund = Batch(runs=[stand_in(RUN, 600)], steps=[_agent(TRIAGE2, 600, "refund", "billing")])
        write_derived(store, derive_for(store, refund, RUN), RUN)
        assert _handoffs(store) == {(TRIAGE, BILLING, *HANDOFF), (BILLING, TRIAGE2, *HANDOFF)}
        check_edge_ledger(store, RUN)
    finally:
        store.close()
